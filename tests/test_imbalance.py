"""Imbalanced classes: the solved head balances them by default past 3x (said, and recorded), and
the figures a user sees first lead with balanced accuracy and macro-F1."""

from __future__ import annotations

import numpy as np
import pytest

from keras_transfer.evaluation.metrics import classification_metrics, format_metrics
from keras_transfer.strategies.bottleneck import class_weighting
from keras_transfer.strategies.solver import fit_linear_head


def test_the_default_balances_past_three_times_and_says_so():
    balanced = np.repeat([0, 1, 2], [400, 380, 20])
    even = np.repeat([0, 1, 2], [300, 250, 200])
    assert class_weighting(None, balanced, 3)[0] == "auto"
    assert class_weighting(None, even, 3)[0] is None
    assert class_weighting("none", balanced, 3)[0] is None and class_weighting("auto", even, 3)[0] == "auto"
    record = class_weighting(None, balanced, 3)[1]["class_weight"]
    assert record["balanced"] and record["imbalance"] == 20.0 and "default" in record["why"]


def test_balancing_raises_the_small_class_recall_on_real_features(ants_run):
    """hymenoptera's real features, bees cut to a few training images: the balanced head finds more bees."""
    from keras_transfer.run import split_features

    train, x, rows = split_features(ants_run, "train")
    val, x_val, val_rows = split_features(ants_run, "val")
    y, y_val = train.labels[rows], val.labels[val_rows]
    keep = np.r_[np.flatnonzero(y == 0), np.flatnonzero(y == 1)[:8]]
    recall = {}
    for weight in (None, "auto"):
        head = fit_linear_head(x[keep][None], y[keep], 2, weight, seed=0).head
        predicted = head.predict(x_val).argmax(1)
        recall[weight] = float((predicted[y_val == 1] == 1).mean())
    assert recall["auto"] > recall[None], recall


def test_imbalanced_figures_lead_with_balanced_accuracy_and_macro_f1():
    from sklearn.metrics import balanced_accuracy_score, f1_score

    y = np.repeat([0, 1], [90, 6])
    p = np.tile([[0.8, 0.2]], (96, 1))
    p[-2:] = [0.3, 0.7]
    m = classification_metrics(y, p, ["big", "small"])
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, p.argmax(1)))
    assert m["f1_macro"] == pytest.approx(f1_score(y, p.argmax(1), average="macro"))
    assert format_metrics(m).startswith("balanced accuracy 0.6667   macro-F1")
    even = classification_metrics(np.repeat([0, 1], 48), p, ["big", "small"])
    assert format_metrics(even).startswith("accuracy")
