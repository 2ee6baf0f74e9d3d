"""Calibrated confidence: temperature scaling chosen on a selection split, applied by predict,
evaluate and the report, measured on held-out images."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import HYMENOPTERA


def test_temperature_lowers_held_out_ece_of_an_overconfident_head_on_real_features(ants_run):
    """An almost unregularised head fit on half of hymenoptera's training images is overconfident;
    a temperature chosen on the other half brings the held-out (val) ECE and log loss down."""
    from keras_transfer.run import split_features
    from keras_transfer.evaluation.calibration import calibration_record
    from keras_transfer.evaluation.predictions import Predictions
    from keras_transfer.data.dataset import stratified_folds
    from keras_transfer.inference.head import softmax
    from keras_transfer.strategies.solver import softmax_regression

    train, x, rows = split_features(ants_run, "train")
    val, x_val, val_rows = split_features(ants_run, "val")
    y, y_val = train.labels[rows], val.labels[val_rows]
    selected = stratified_folds(y, 2, 0) == 0  # half the training images only choose T
    w = softmax_regression(x[~selected], y[~selected], 2, C=1e4, weights=np.ones(int((~selected).sum())))

    def predictions(name, features, labels):
        return Predictions(name, np.arange(len(labels)).astype(str), np.arange(len(labels)), labels,
                           softmax(features @ w[:-1] + w[-1]))

    record = calibration_record(predictions("val", x_val, y_val), predictions("selection", x[selected], y[selected]))
    assert record["method"] == "temperature scaling" and record["temperature"] > 1.2  # softened
    assert record["cross_validated_log_loss_gain"] > 0 and record["fit_on"].startswith(f"selection: {selected.sum()}")
    assert record["ece_after"] < record["ece_before"] and record["log_loss_after"] < record["log_loss_before"]


def test_too_few_selection_images_keep_temperature_one():
    from keras_transfer.evaluation.calibration import MIN_FIT_IMAGES, calibration_record
    from keras_transfer.evaluation.predictions import Predictions

    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet([0.3, 0.3], size=MIN_FIT_IMAGES - 1).astype(np.float32)
    few = Predictions("selection", np.zeros(len(probabilities), str), np.arange(len(probabilities)),
                      rng.integers(0, 2, len(probabilities)), probabilities)
    record = calibration_record(few, few)
    assert record["temperature"] == 1.0 and record["method"] == "none" and "fewer than" in record["why"]


def test_apply_temperature_keeps_the_winner_and_matches_scaled_logits():
    from keras_transfer.evaluation.calibration import apply_temperature

    logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.3, 0.2]])
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    scaled = np.exp(logits / 2) / np.exp(logits / 2).sum(axis=1, keepdims=True)
    assert np.allclose(apply_temperature(p, 2.0), scaled, atol=1e-6)
    assert (apply_temperature(p, 0.3).argmax(axis=1) == p.argmax(axis=1)).all()


@pytest.fixture
def warm_run(ants_run, tmp_path):
    """A copy of the default run whose calibration says T = 2 (a default run keeps T = 1)."""
    run_path = tmp_path / "ants-t2"
    shutil.copytree(ants_run.path, run_path, ignore=shutil.ignore_patterns("features"))
    record = json.loads((run_path / "calibration.json").read_text())
    (run_path / "calibration.json").write_text(json.dumps({**record, "temperature": 2.0}))
    return run_path


def test_default_run_records_why_it_keeps_temperature_one(ants_run):
    record = ants_run.read("calibration.json")
    assert record["temperature"] == 1.0 and "cross-validated log loss" in record["why"]
    assert record["ece_before"] == record["ece_after"] == ants_run.read("metrics.json")["calibration"]["ece_after"]
    assert record["evaluated_on"] == "val: 153 held-out images"


def test_predict_evaluate_and_report_use_the_run_temperature(ants_run, warm_run):
    from keras_transfer.run import evaluate, predict
    from keras_transfer.evaluation.calibration import apply_temperature
    from keras_transfer.report import build_report
    from keras_transfer.run import Run

    images = sorted((HYMENOPTERA / "val" / "ants").iterdir())[:4]
    raw = np.array([[p["probability"] for p in sorted(r["predictions"], key=lambda p: p["index"])]
                    for r in predict(ants_run, images)])
    warm = np.array([[p["probability"] for p in sorted(r["predictions"], key=lambda p: p["index"])]
                     for r in predict(warm_run, images)])
    assert np.allclose(warm, apply_temperature(raw, 2.0), atol=1e-5) and not np.allclose(warm, raw, atol=1e-3)
    metrics = evaluate(warm_run)["calibration"]
    assert metrics["temperature"] == 2.0 and metrics["ece_before"] != metrics["ece_after"]
    section = build_report(Run.open(warm_run)).section("calibration")
    assert abs(section.data["calibration"].ece - metrics["ece_after"]) < 1e-6  # float32 products, summed apart
    assert {"reliability_before", "reliability"} <= {getattr(b, "name", None) for b in section.blocks}


def test_damaged_calibration_file_names_the_file(warm_run, capsys):
    from keras_transfer.cli import main

    (warm_run / "calibration.json").write_text('{"temperature": -3}')
    assert main(["predict", str(warm_run), str(HYMENOPTERA / "val" / "ants"), "-q"]) == 1
    assert "calibration.json" in capsys.readouterr().err
