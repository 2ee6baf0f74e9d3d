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


FLOWERS5 = DATASETS / "flowers5"
FLOWER_CLASSES = ("daisy", "sunflower", "tulip")


@pytest.fixture(scope="session")
def flowers3(tmp_path_factory) -> Path:
    """10 photos of each of three flowers5 classes, as symlinks (a quick dataset for a new backbone route)."""
    root = tmp_path_factory.mktemp("flowers3")
    for name in FLOWER_CLASSES:
        (root / name).mkdir()
        for photo in sorted((FLOWERS5 / name).glob("*.jpg"))[:10]:
            (root / name / photo.name).symlink_to(photo)
    return root


def engine_features(backbone: str, folder: Path, out: Path, stages: int = 1, **options) -> np.ndarray:
    """Pooled features of every image under ``folder`` (sorted) through the engine and feature cache."""
    from keras_transfer.config import TrainConfig, feature_source
    from keras_transfer.data.dataset import Split

    paths = sorted(folder.rglob("*.jpg"))
    config = TrainConfig(data=str(folder), backbone=backbone, stages=stages, **options).validate()
    features, indices = feature_source(config, out)(Split("x", paths, np.zeros(len(paths), np.int64)))
    assert len(indices) == len(paths)
    return features


def resized_pixels(paths, size: int, mode: str = "stretch") -> np.ndarray:
    """The engine's resized uint8 pixels of ``paths`` (what every consumer of a run feeds its graph)."""
    from keras_transfer.data.images import read_image, resize

    return np.stack([resize(read_image(p, size), size, mode) for p in paths])


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def predictions_of(results: list[dict], paths: list[str], classes: int, key: str = "path",
                   listed: str = "predictions") -> np.ndarray:
    """(N, classes) probabilities from predict's or the server's result rows, in ``paths``' order."""
    by_path = {r[key]: r[listed] for r in results}
    found = np.zeros((len(paths), classes), np.float32)
    for row, path in enumerate(paths):
        for entry in by_path[path]:
            found[row, entry["index"]] = entry["probability"]
    return found


def assert_consumers_agree(out: Path, serve: bool = False) -> None:
    """predict, the ONNX export (and the real server) give the run's stored held-out probabilities (< 1e-4)."""
    import httpx

    from keras_transfer.export import export_run
    from keras_transfer.export.parity import session
    from keras_transfer.run import Run, RunModel, predict
    from keras_transfer.serve.process import ServerProcess

    run = Run.open(out)
    stored = run.predictions().with_temperature(run.temperature)
    paths, classes = [str(p) for p in stored.ids], len(run.class_names)
    predicted = predictions_of(predict(run, paths, top_k=classes), paths, classes)
    assert np.abs(predicted - stored.probabilities).max() < 1e-4
    model = RunModel.open(run)
    exported = session(export_run(run, "onnx", parity=False))(resized_pixels(paths, model.size, model.resize_mode))
    assert np.abs(exported - stored.probabilities).max() < 1e-4
    if serve:
        with ServerProcess([out]) as server:
            files = [("files", (p, open(p, "rb").read(), "image/jpeg")) for p in paths]
            answer = httpx.post(server.url + "/v1/predict", files=files, data={"top_k": str(classes)}, timeout=120)
        assert answer.status_code == 200, answer.text
        results = [{**r, "path": p} for r, p in zip(answer.json()["results"], paths)]
        assert np.abs(predictions_of(results, paths, classes, listed="top_k") - stored.probabilities).max() < 1e-4
