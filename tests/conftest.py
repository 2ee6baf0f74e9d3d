"""Shared fixtures: real datasets from ../shared, an isolated cache, small generated datasets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import keras_transfer  # noqa: F401  (sets the Keras backend before keras is imported)

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
HYMENOPTERA = DATASETS / "hymenoptera_data"


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Every test session gets its own cache root (weights, ONNX exports, features)."""
    root = tmp_path_factory.mktemp("cache")
    old = os.environ.get("KERAS_TRANSFER_CACHE")
    os.environ["KERAS_TRANSFER_CACHE"] = str(root)
    yield root
    if old is None:
        os.environ.pop("KERAS_TRANSFER_CACHE", None)
    else:
        os.environ["KERAS_TRANSFER_CACHE"] = old


def _hymenoptera_run(tmp_path_factory, name: str, *options: str):
    from keras_transfer.cli import main
    from keras_transfer.run import Run

    out = tmp_path_factory.mktemp("runs") / name
    assert main(["train", str(HYMENOPTERA), "--out", str(out), "--quiet", *options]) == 0
    return Run.open(out)


@pytest.fixture(scope="session")
def ants_run(tmp_path_factory):
    """A default bottleneck run on hymenoptera, trained through the CLI once per session."""
    return _hymenoptera_run(tmp_path_factory, "ants")


@pytest.fixture(scope="session")
def lite0_run(tmp_path_factory):
    """A hymenoptera run on EfficientNet-Lite0 alone, once per session: what a test of a run folder's files,
    export or reopening needs, at a third of the default ensemble's cost (the ensemble: ``ants_run``)."""
    return _hymenoptera_run(tmp_path_factory, "ants-lite0", "--backbone", "efficientnet_lite0")


def ctrl_c_reaches_child() -> None:
    """``preexec_fn`` of a child a test stops with SIGINT: a shell starts background jobs (``make test &``)
    with SIGINT ignored, and Python then installs no handler of its own; the child gets the default back."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def make_image(path: Path, colour: tuple[int, int, int], size=(40, 30), mode="RGB", fmt=None) -> Path:
    """Writes a small image with a coloured square on noise, in the given PIL mode/format."""
    rng = np.random.default_rng(abs(hash(path.name)) % 2**32)
    array = rng.integers(0, 60, (size[1], size[0], 3), dtype=np.uint8)
    array[size[1] // 4: 3 * size[1] // 4, size[0] // 4: 3 * size[0] // 4] = colour
    image = Image.fromarray(array)
    if mode == "P":
        image = image.convert("P", palette=Image.ADAPTIVE)
    elif mode != "RGB":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=fmt)
    return path


@pytest.fixture
def colour_folder(tmp_path) -> Path:
    """A folder-per-class dataset: 'red' and 'blue' squares, 12 images each, mixed formats."""
    root = tmp_path / "colours"
    formats = [("jpg", "RGB"), ("PNG", "RGBA"), ("bmp", "RGB"), ("gif", "P"), ("webp", "RGB"), ("JPEG", "L")]
    for name, colour in (("red", (230, 30, 30)), ("blue", (30, 30, 230))):
        for i in range(12):
            ext, mode = formats[i % len(formats)]
            make_image(root / name / f"{name}_{i}.{ext}", colour, mode=mode)
    return root
