"""End to end through the CLI (in-process): train, evaluate, predict on real data."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import HYMENOPTERA

from keras_transfer.run import predict
from keras_transfer.cli import main
from keras_transfer.config import TrainConfig
from keras_transfer.data.load import load_dataset
from keras_transfer.features.runtime import resolve_precision
from keras_transfer.run import Run


def test_bar_hymenoptera_val_accuracy(ants_run):
    metrics = ants_run.read("metrics.json")
    assert metrics["split"] == "val" and metrics["n"] == 153
    assert metrics["accuracy"] >= 0.94


def test_run_folder_contents(ants_run):
    metrics = ants_run.read("metrics.json")
    assert set(metrics) >= {"accuracy", "cohen_kappa", "log_loss", "per_class", "confusion_matrix"}
    assert set(metrics["per_class"]) == {"ants", "bees"}
    assert all({"precision", "recall", "f1", "support"} <= set(m) for m in metrics["per_class"].values())
    matrix = np.array(metrics["confusion_matrix"])
    assert matrix.sum() == 153 and np.trace(matrix) / 153 == pytest.approx(metrics["accuracy"])
    assert 0 < metrics["cohen_kappa"] <= 1 and 0 < metrics["log_loss"] < 1
    assert ants_run.class_names == ["ants", "bees"]
    # the run records the precision ``auto`` resolved to on this CPU, not "auto"
    assert ants_run.config == dataclasses.replace(TrainConfig(data=str(HYMENOPTERA)), precision=resolve_precision("auto"))
    assert ants_run.read("history.json") == {}  # the default head is solved, not trained by epochs
    assert ants_run.read("metrics.json")["selection"]["solver"] == "lbfgs"
    assert (ants_run.path / "features" / "train.npz").exists()
    assert "Lambda" not in (ants_run.path / "model.keras").read_bytes().decode("latin-1")


def test_saved_model_takes_raw_uint8_images_of_any_size(ants_run):
    model = Run.open(ants_run.path).model  # fresh load, safe mode on
    rng = np.random.default_rng(0)
    for shape in [(1, 300, 500, 3), (2, 80, 100, 3)]:
        probabilities = np.asarray(model.predict(rng.integers(0, 256, shape, dtype=np.uint8), verbose=0))
        assert probabilities.shape == (shape[0], 2)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_saved_model_agrees_with_training_features(ants_run):
    """The end-to-end Keras model (preprocessing inside) reproduces the ONNX-feature metrics."""
    results = predict(ants_run, [HYMENOPTERA / "val"], top_k=2)
    assert len(results) == 153 and not any("error" in r for r in results)
    truth = {str(p): Path(p).parent.name for p in (HYMENOPTERA / "val").rglob("*.jpg")}
    accuracy = np.mean([r["predictions"][0]["label"] == truth[r["path"]] for r in results])
    assert accuracy == pytest.approx(ants_run.read("metrics.json")["accuracy"], abs=0.007)


def test_evaluate_cli_matches_training_metrics(ants_run, capsys):
    assert main(["evaluate", str(ants_run.path), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["accuracy"] == pytest.approx(ants_run.read("metrics.json")["accuracy"])
    assert metrics["confusion_matrix"] == ants_run.read("metrics.json")["confusion_matrix"]


def test_predict_cli_json_top_k(ants_run, capsys, tmp_path):
    bee = next((HYMENOPTERA / "val" / "bees").glob("*.jpg"))
    junk = tmp_path / "junk.jpg"
    junk.write_text("not an image")
    assert main(["predict", str(ants_run.path), str(bee), str(junk), "--top-k", "2", "--json", "-q"]) == 0
    results = {Path(r["path"]).name: r for r in json.loads(capsys.readouterr().out)}
    top = results[bee.name]["predictions"]
    assert [p["label"] for p in top] == ["bees", "ants"] and top[0]["probability"] > 0.5
    assert sum(p["probability"] for p in top) == pytest.approx(1.0, abs=1e-5)
    assert "not a readable image" in results["junk.jpg"]["error"]


def test_rerun_reuses_saved_features(ants_run, tmp_path):
    out = tmp_path / "again"
    import shutil

    shutil.copytree(ants_run.path / "features", out / "features")
    stamp = (out / "features" / "train.npz").stat().st_mtime_ns
    assert main(["train", str(HYMENOPTERA), "--out", str(out), "-q"]) == 0
    again = Run.open(out)
    assert (out / "features" / "train.npz").stat().st_mtime_ns == stamp
    assert again.read("timing.json")["feature_seconds"] < 2.0
    assert again.read("metrics.json")["accuracy"] == pytest.approx(ants_run.read("metrics.json")["accuracy"])


def test_train_on_numpy_arrays(tmp_path):
    digits = load_dataset("digits")
    keep = np.concatenate([np.flatnonzero(digits.train.labels == c)[:15] for c in range(3)])
    np.save(tmp_path / "images.npy", digits.train.items[keep])
    np.save(tmp_path / "labels.npy", digits.train.labels[keep])
    out = tmp_path / "run"
    assert main(["train", str(tmp_path), "--out", str(out), "--epochs", "30", "-q"]) == 0
    run = Run.open(out)
    assert run.class_names == ["0", "1", "2"]
    assert run.read("metrics.json")["accuracy"] >= 0.6  # 9 held-out digits, chance is 1/3
    image = digits.train.items[keep[:1]]  # 8x8 grayscale values 0..255
    rgb = np.repeat(image[..., None], 3, axis=-1).astype(np.uint8)
    assert np.asarray(run.model.predict(rgb, verbose=0)).shape == (1, 3)


@pytest.mark.parametrize("argv, code, message", [
    (["train", "/nonexistent/data"], 1, "dataset not found"),
    (["train", "digits", "--backbone", "efficientnet_lite9"], 2, "did you mean"),
    (["train", "digits", "--resize", "squash"], 2, "unknown resize mode"),
    (["evaluate", "/nonexistent/run"], 1, "run folder not found"),
    (["predict", "/nonexistent/run", "x.jpg"], 1, "run folder not found"),
])
def test_cli_errors_are_one_clear_message(argv, code, message, capsys):
    assert main(argv + ["-q"]) == code
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and "Traceback" not in err


def test_keras_backend_is_torch():
    assert keras.backend.backend() == "torch"


def test_train_without_dataset_argument_uses_the_bundled_flowers():
    from keras_transfer.cli import build_parser

    args = build_parser().parse_args(["train"])
    assert args.data == "flowers"
    assert len(load_dataset(args.data).class_names) == 5
    assert len(load_dataset("digits").class_names) == 10  # still there by name
