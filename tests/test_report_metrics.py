"""Bootstrap confidence intervals, calibration, saved predictions and stratified samples (no model)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from keras_transfer.data.dataset import stratified_sample
from keras_transfer.evaluation.bootstrap import bootstrap_metrics, metrics_from_confusion
from keras_transfer.evaluation.calibration import calibration
from keras_transfer.evaluation.metrics import classification_metrics
from keras_transfer.evaluation.predictions import Predictions


def noisy_predictions(n: int, classes: int, seed: int, skill: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and softmax probabilities that favour the true class by ``skill`` logits on average."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    logits = rng.normal(size=(n, classes))
    logits[np.arange(n), labels] += skill
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, probabilities


def test_bootstrap_estimates_equal_the_plain_metrics():
    labels, probabilities = noisy_predictions(300, 4, seed=0)
    names = ["a", "b", "c", "d"]
    table = bootstrap_metrics(labels, probabilities, names, resamples=200).set_index(["metric", "class"])
    plain = classification_metrics(labels, probabilities, names)
    for metric in ("accuracy", "cohen_kappa", "log_loss"):
        assert table.loc[(metric, ""), "estimate"] == pytest.approx(plain[metric], abs=1e-9)
    for name in names:
        for metric in ("precision", "recall", "f1"):
            assert table.loc[(metric, name), "estimate"] == pytest.approx(plain["per_class"][name][metric], abs=1e-9)
    assert (table["low"] <= table["estimate"] + 1e-12).all() and (table["estimate"] <= table["high"] + 1e-12).all()
    assert (table.loc["accuracy", "high"] - table.loc["accuracy", "low"]).item() > 0.02


def test_confusion_metrics_match_sklearn_per_resample():
    labels, probabilities = noisy_predictions(80, 3, seed=1, skill=0.5)
    predicted = probabilities.argmax(axis=1)
    cm = skm.confusion_matrix(labels, predicted, labels=[0, 1, 2])
    got = metrics_from_confusion(np.stack([cm, cm.T]))  # a batch of two matrices
    p, r, f, _ = skm.precision_recall_fscore_support(labels, predicted, labels=[0, 1, 2], zero_division=0)
    np.testing.assert_allclose(got["precision"][0], p)
    np.testing.assert_allclose(got["recall"][0], r)
    np.testing.assert_allclose(got["f1"][0], f)
    assert got["cohen_kappa"][0] == pytest.approx(skm.cohen_kappa_score(labels, predicted))
    np.testing.assert_allclose(got["recall"][1], p)  # transposing swaps precision and recall


def test_interval_narrows_with_more_images():
    widths = []
    for n in (60, 2000):
        labels, probabilities = noisy_predictions(n, 2, seed=2, skill=1.0)
        table = bootstrap_metrics(labels, probabilities, ["x", "y"], resamples=300).set_index("metric")
        widths.append(table.loc["accuracy", "high"] - table.loc["accuracy", "low"])
    assert widths[1] < widths[0] / 3


def test_perfect_and_degenerate_predictions():
    labels = np.array([0, 1, 0, 1, 1])
    perfect = np.eye(2)[labels] * 0.98 + 0.01
    table = bootstrap_metrics(labels, perfect, ["x", "y"], resamples=100).set_index("metric")
    assert table.loc["accuracy", ["estimate", "low", "high"]].tolist() == [1.0, 1.0, 1.0]
    one_class = bootstrap_metrics(np.zeros(4, int), np.tile([[0.9, 0.1]], (4, 1)), ["x", "y"], resamples=50)
    kappa = one_class.set_index("metric").loc["cohen_kappa"]
    assert np.isnan(kappa["estimate"]) and np.isnan(kappa["low"])  # undefined, not a crash
    assert one_class.set_index(["metric", "class"]).loc[("recall", "x"), "estimate"] == 1.0


def test_calibration_by_hand():
    labels = np.array([0, 0, 1, 1])
    probabilities = np.array([[0.95, 0.05], [0.85, 0.15], [0.6, 0.4], [0.3, 0.7]])  # 0.6 opens bin [0.6, 0.8)
    result = calibration(labels, probabilities, bins=5)
    # bins of width 0.2: {0.6, 0.7} -> 0.6-0.8 (acc 0.5), {0.85, 0.95} -> 0.8-1.0 (acc 1)
    assert result.counts.tolist() == [0, 0, 0, 2, 2]
    np.testing.assert_allclose(result.confidence[3:], [0.65, 0.9])
    np.testing.assert_allclose(result.accuracy[3:], [0.5, 1.0])
    assert result.ece == pytest.approx(0.5 * 0.15 + 0.5 * 0.1)
    assert result.mce == pytest.approx(0.15)
    assert np.isnan(result.accuracy[0]) and result.as_dict()["accuracy"][0] is None


def test_calibration_separates_calibrated_from_overconfident():
    rng = np.random.default_rng(3)
    confidence = rng.uniform(0.5, 1.0, 20000)
    labels = (rng.uniform(size=confidence.size) > confidence).astype(int)  # class 0 right with p = confidence
    calibrated = np.stack([confidence, 1 - confidence], axis=1)
    sharpened = calibrated ** 4 / (calibrated ** 4).sum(axis=1, keepdims=True)
    assert calibration(labels, calibrated).ece < 0.02
    assert calibration(labels, sharpened).ece > 0.1


def test_predictions_round_trip_without_pickle(tmp_path):
    saved = Predictions("val", np.array(["a/1.jpg", "b/2.jpg"]), np.array([0, 3]), np.array([1, 0]),
                        np.array([[0.2, 0.8], [0.6, 0.4]], np.float32))
    saved.save(tmp_path / "p.npz")
    with np.load(tmp_path / "p.npz", allow_pickle=False) as raw:
        assert sorted(raw.files) == ["ids", "indices", "labels", "probabilities", "split"]
    loaded = Predictions.load(tmp_path / "p.npz")
    assert loaded.split == "val" and loaded.ids.tolist() == ["a/1.jpg", "b/2.jpg"]
    assert loaded.predicted.tolist() == [1, 0]
    np.testing.assert_array_equal(loaded.probabilities, saved.probabilities)


def test_stratified_sample_spreads_over_classes():
    labels = np.repeat([0, 1, 2], [50, 5, 30])
    pick = stratified_sample(labels, 30, seed=4)
    assert np.bincount(labels[pick]).tolist() == [10, 5, 10]  # the small class gives all it has
    assert (np.diff(labels[pick]) >= 0).all() and len(set(pick)) == len(pick)
    np.testing.assert_array_equal(pick, stratified_sample(labels, 30, seed=4))


@pytest.mark.parametrize("classes, seed", [(2, 1), (5, 2), (4, 3)])
def test_classification_metrics_equal_sklearn(classes, seed):
    labels, probabilities = noisy_predictions(250, classes, seed=seed, skill=1.0)
    if classes == 4:
        probabilities[:, 3] = 0  # a class never predicted: precision 0 by sklearn's zero_division=0
    names = [str(i) for i in range(classes)]
    ours = classification_metrics(labels, probabilities, names)
    predicted = probabilities.argmax(1)
    assert ours["accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted))
    assert ours["cohen_kappa"] == pytest.approx(skm.cohen_kappa_score(labels, predicted))
    clipped = np.clip(probabilities, 1e-7, 1)
    assert ours["log_loss"] == pytest.approx(skm.log_loss(labels, clipped / clipped.sum(1, keepdims=True)))
    assert ours["confusion_matrix"] == skm.confusion_matrix(labels, predicted, labels=range(classes)).tolist()
    p, r, f, s = skm.precision_recall_fscore_support(labels, predicted, labels=range(classes), zero_division=0)
    for i, name in enumerate(names):
        got = ours["per_class"][name]
        assert (got["precision"], got["recall"], got["f1"], got["support"]) == pytest.approx((p[i], r[i], f[i], s[i]))
