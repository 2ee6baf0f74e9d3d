"""The studio tests' data: a small copy of hymenoptera with planted wrong labels, and its hashes."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from conftest import HYMENOPTERA

BACKBONE = "efficientnet_lite0"
PLANTED = 3  # val bees put in val/ants: held-out images whose folder label is wrong


def planted_copy(root: Path, train: int = 30, val: int = 14) -> tuple[Path, list[str]]:
    """``root/data``: ``train`` + ``val`` images per class of hymenoptera, and ``PLANTED`` val bees
    moved into ``val/ants``; returns the folder and the planted images' ids."""
    data = root / "data"
    for split, count in (("train", train), ("val", val)):
        for name in ("ants", "bees"):
            files = sorted(p for p in (HYMENOPTERA / split / name).iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
            (data / split / name).mkdir(parents=True, exist_ok=True)
            for path in files[:count]:
                shutil.copyfile(path, data / split / name / path.name)
    bees = sorted(p for p in (HYMENOPTERA / "val" / "bees").iterdir() if p.suffix.lower() == ".jpg")[val: val + PLANTED]
    planted = []
    for path in bees:
        shutil.copyfile(path, data / "val" / "ants" / path.name)
        planted.append(f"val/ants/{path.name}")
    return data, planted


def hashes(folder: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``folder`` (the folder's exact content)."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}
