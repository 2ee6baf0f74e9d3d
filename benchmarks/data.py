"""Benchmark images: CIFAR-10 JPEGs from ../shared/datasets, unpacked once outside the repo."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARBALL = REPO.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def cifar_root(work: Path) -> Path:
    """``<work>/cifar10`` with ``train/`` and ``test/``, unpacked from the shared tarball once."""
    root = work / "cifar10"
    if not (root / "test" / CLASSES[-1]).is_dir():
        if not TARBALL.exists():
            raise SystemExit(f"CIFAR-10 tarball not found at {TARBALL}")
        work.mkdir(parents=True, exist_ok=True)
        with tarfile.open(TARBALL) as archive:
            archive.extractall(work, filter="data")
    return root


def balanced_files(root: Path, split: str, count: int, offset: int = 0) -> list[Path]:
    """``count`` JPEGs of ``split``, the same number per class (plus the remainder from the first ones)."""
    per_class = [sorted((root / split / name).glob("*.jpg")) for name in CLASSES]
    need = -(-count // len(CLASSES))
    picked = [files[offset:offset + need] for files in per_class]
    return [f for group in zip(*picked) for f in group][:count]


def linked_dataset(files: list[Path], folder: Path) -> Path:
    """A folder-per-class dataset of symlinks to ``files`` (nothing copied)."""
    for file in files:
        link = folder / file.parent.name / file.name
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(file)
    return folder


def cpu() -> str:
    """The CPU model, core count and the vector/matrix extensions that change the speed of inference."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    wanted = [f for f in flags if f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")]
    return f"{model} ({os.cpu_count()} cores; {' '.join(wanted)})"
