"""The Ray executor on a real local Ray instance (2 CPUs, started and stopped here): the same
features and predictions as the local executor, a killed actor retried with every image
cached exactly once, an interrupted run resumed from the cache, and clear option errors.

Each run gets its own cache root with the session's warm parts (weights, ONNX, OpenVINO)
copied in, so only features are computed and Ray really extracts them.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3

import numpy as np
import pytest

from conftest import HYMENOPTERA

ray = pytest.importorskip("ray")

from keras_transfer.cli import main  # noqa: E402
from keras_transfer.data.load import load_dataset  # noqa: E402
from keras_transfer.features import FeatureCache  # noqa: E402
from keras_transfer.features.ray_executor import RayExecutor  # noqa: E402
from keras_transfer.run import Run, feature_source  # noqa: E402

WARM_PARTS = ("weights", "onnx", "openvino", "templates")
SMALL = ["--max-per-class", "25", "--quiet", "--no-baseline"]


@pytest.fixture(scope="module")
def ray_instance(tmp_path_factory):
    """A local Ray instance for this module: 2 CPUs, no dashboard, a small object store."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    temp = tmp_path_factory.mktemp("ray")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=300 * 1024**2, _temp_dir=str(temp),
             logging_level="WARNING", log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def fresh_cache(isolated_cache, tmp_path, monkeypatch):
    """Switches KERAS_TRANSFER_CACHE to a new root holding the warm parts but no features."""
    def make(name: str):
        root = tmp_path / name
        for part in WARM_PARTS:
            if (isolated_cache / part).is_dir():
                shutil.copytree(isolated_cache / part, root / part)
        monkeypatch.setenv("KERAS_TRANSFER_CACHE", str(root))
        return root
    return make


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, isolated_cache):
    """The reference: a small default run trained with the local executor."""
    out = tmp_path_factory.mktemp("runs") / "local"
    assert main(["train", str(HYMENOPTERA), "--out", str(out), *SMALL]) == 0
    return Run.open(out)


def _probabilities(run: Run, features: np.ndarray) -> np.ndarray:
    from keras_transfer.run import RunModel

    return RunModel.open(run).head.predict(features)


def test_train_and_predict_with_ray_match_local(ray_instance, local_run, fresh_cache, tmp_path):
    root = fresh_cache("ray")
    out = tmp_path / "ray-run"
    assert main(["train", str(HYMENOPTERA), "--out", str(out), *SMALL, "--executor", "ray"]) == 0
    ray_run = Run.open(out)
    images = ray_run.read("dataset.json")["splits"]
    assert FeatureCache(root / "features").count() == sum(images.values())  # extracted by Ray, cached once each
    assert ray_run.config.executor == "ray"
    for name in ("train", "val"):
        with np.load(out / "features" / f"{name}.npz") as ray_f, np.load(local_run.path / "features" / f"{name}.npz") as f:
            assert np.array_equal(ray_f["indices"], f["indices"])
            assert np.abs(ray_f["features"] - f["features"]).max() <= 1e-4 * np.abs(f["features"]).max()
    a, b = local_run.read("metrics.json"), ray_run.read("metrics.json")
    assert a["accuracy"] == b["accuracy"] and a["n"] == b["n"]
    pa = np.load(local_run.path / "predictions.npz")["probabilities"]
    pb = np.load(out / "predictions.npz")["probabilities"]
    assert np.abs(pa - pb).max() <= 1e-4

    # batch predict through Ray, written to --output, equals the local predictions
    photos = sorted((HYMENOPTERA / "val" / "bees").iterdir())[:12]
    out_json = tmp_path / "preds.json"
    assert main(["predict", str(out), *map(str, photos), "--output", str(out_json), "--executor", "ray",
                 "--quiet"]) == 0
    from keras_transfer.run.predict import predict

    local = predict(local_run, photos)
    remote = __import__("json").loads(out_json.read_text())
    assert [r["path"] for r in remote] == [r["path"] for r in local]
    for r, l in zip(remote, local):
        assert abs(r["predictions"][0]["probability"] - l["predictions"][0]["probability"]) <= 1e-4

    # a later local run reuses every feature Ray cached
    source = feature_source(ray_run.config, tmp_path / "reuse", executor="local")
    split = load_dataset(str(HYMENOPTERA), max_per_class=25).splits["train"]
    source(split)
    assert source.engine.extracted == 0


def _hymenoptera_split():
    dataset = load_dataset(str(HYMENOPTERA))
    return dataset.splits["train"]


def test_killed_actor_is_retried_and_every_image_cached_once(ray_instance, local_run, fresh_cache, tmp_path):
    root = fresh_cache("fault")
    split = _hymenoptera_split()
    executor = RayExecutor(actors=1, batch_size=4)
    source = feature_source(local_run.config, tmp_path / "fault-run", executor=executor)
    killed: list[int] = []
    engine = source.engine
    fill = engine.fill

    def killing_fill(split, views, sink, desc="features"):
        def wrapped(position, rows, vector):
            if not killed and executor.workers:
                killed.append(next(iter(executor.workers)))
                os.kill(killed[0], signal.SIGKILL)
            sink(position, rows, vector)
        return fill(split, views, wrapped, desc)

    engine.fill = killing_fill
    features, indices = source(split)
    assert killed and len(executor.workers) >= 2, "the actor was killed and a restarted one finished the run"
    assert engine.extracted == len(set(engine_keys(split)))  # each distinct image extracted exactly once
    with sqlite3.connect(root / "features" / "features.sqlite") as db:
        rows = db.execute("SELECT COUNT(*), COUNT(DISTINCT content) FROM features WHERE identity = ?",
                          (engine.identity_key,)).fetchone()
    assert rows[0] == rows[1] == len(set(engine_keys(split)))

    fresh_cache("fault-local")  # the same images through the local executor, from scratch
    local = feature_source(local_run.config, tmp_path / "fault-local-run", executor="local")
    local_features, local_indices = local(split)
    assert np.array_equal(indices, local_indices)
    diff = np.abs(_probabilities(local_run, features) - _probabilities(local_run, local_features)).max()
    assert diff <= 1e-4


def engine_keys(split):
    from keras_transfer.features.keys import content_keys

    return [c for c in content_keys(split) if c is not None]


def test_interrupted_ray_run_resumes_from_the_cache(ray_instance, local_run, fresh_cache, tmp_path):
    root = fresh_cache("resume")
    split = load_dataset(str(HYMENOPTERA), max_per_class=40).splits["train"]
    source = feature_source(local_run.config, tmp_path / "a", executor=RayExecutor(batch_size=8))
    calls = []

    def interrupting(position, rows, vector):
        calls.append(1)
        if len(calls) == 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        source.engine.fill(split, [0], interrupting)
    done = FeatureCache(root / "features").count()
    assert 8 <= done < len(split)
    again = feature_source(local_run.config, tmp_path / "b", executor="local")
    again(split)
    assert again.engine.extracted == len(split) - done


def test_array_dataset_through_ray_matches_local(ray_instance, local_run, fresh_cache, tmp_path):
    rng = np.random.default_rng(0)
    from keras_transfer.data.dataset import Split

    split = Split("arrays", rng.integers(0, 255, (24, 48, 48, 3), dtype=np.uint8), np.zeros(24, np.int64))
    fresh_cache("arrays-ray")
    remote, _ = feature_source(local_run.config, tmp_path / "r", executor="ray").view(split, 0)
    fresh_cache("arrays-local")
    local, _ = feature_source(local_run.config, tmp_path / "l", executor="local").view(split, 0)
    assert np.abs(remote - local).max() <= 1e-4 * np.abs(local).max()


def test_option_errors_exit_2(monkeypatch, capsys):
    import importlib.util

    assert main(["train", str(HYMENOPTERA), "--executor", "spark", "--quiet"]) == 2
    assert "unknown executor 'spark'" in capsys.readouterr().err
    assert main(["train", str(HYMENOPTERA), "--executor", "ray", "--runtime", "keras", "--quiet"]) == 2
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    assert main(["train", str(HYMENOPTERA), "--executor", "ray", "--quiet"]) == 2
    assert "pip install 'keras-transfer[ray]'" in capsys.readouterr().err
    assert main(["predict", "runs/none", "x.jpg", "--executor", "ray", "--quiet"]) == 2


def test_undecodable_file_is_reported_as_locally(ray_instance, local_run, fresh_cache, tmp_path, colour_folder):
    from keras_transfer.data.dataset import Split

    broken = colour_folder / "red" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    files = sorted(p for p in colour_folder.rglob("*") if p.is_file())
    split = Split("mixed", files, np.zeros(len(files), np.int64))
    fresh_cache("broken-ray")
    remote = feature_source(local_run.config, tmp_path / "r", executor="ray")
    remote_features, remote_indices = remote.view(split, 0)
    fresh_cache("broken-local")
    local = feature_source(local_run.config, tmp_path / "l", executor="local")
    local_features, local_indices = local.view(split, 0)
    assert [i for i, _ in remote.failed] == [i for i, _ in local.failed] == [str(broken)]
    assert np.array_equal(remote_indices, local_indices) and len(local_indices) == len(files) - 1
    assert np.abs(remote_features - local_features).max() <= 1e-4 * np.abs(local_features).max()


def test_audit_through_ray_finds_what_local_finds(ray_instance, fresh_cache, tmp_path, capsys):
    """The audit's features through the Ray actor pool: the same findings, same scores, as local."""
    import json

    data = tmp_path / "data"
    for c in ("ants", "bees"):
        (data / c).mkdir(parents=True)
        for photo in sorted((HYMENOPTERA / "train" / c).iterdir())[:15]:
            (data / c / photo.name).symlink_to(photo)
    found = {}
    for executor in ("ray", "local"):
        fresh_cache(f"cache-{executor}")  # nothing cached: every feature comes through the executor
        assert main(["audit", str(data), "--executor", executor, "--json", "--quiet"]) == 0
        found[executor] = json.loads(capsys.readouterr().out)
    assert found["ray"]["findings"] == found["local"]["findings"] and found["ray"]["summary"] == found["local"]["summary"]
    assert main(["audit", str(data), "--executor", "spark", "--quiet"]) == 2


def test_an_onnx_encoder_through_ray_matches_local(ray_instance, fresh_cache, flowers3, tmp_path):
    """``onnx:`` (and so ``hub:`` / ``timm:``, converted to one) backbones extract on Ray actors too."""
    import torch

    from conftest import engine_features, relative_error
    from keras_transfer.backbones.onnx_encoder import save_torch_encoder

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.ReLU(), torch.nn.Conv2d(8, 16, 3, stride=2))
    encoder = save_torch_encoder(net, 32, tmp_path / "enc.onnx", {"mean": [0.5] * 3, "std": [0.25] * 3})
    fresh_cache("onnx-ray")
    remote = engine_features(f"onnx:{encoder}", flowers3, tmp_path / "r", executor="ray")
    fresh_cache("onnx-local")
    local = engine_features(f"onnx:{encoder}", flowers3, tmp_path / "l")
    assert remote.shape == local.shape == (30, 16) and relative_error(remote, local) < 1e-5
