"""Bootstrap confidence intervals of the classification metrics, vectorised over resamples."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

HEADLINE = ("accuracy", "cohen_kappa", "log_loss")
PER_CLASS = ("precision", "recall", "f1")


def _confusions(labels: np.ndarray, predicted: np.ndarray, samples: np.ndarray, num_classes: int) -> np.ndarray:
    """Confusion matrices (B, C, C) of B resamples, each given as a row of indices in ``samples``."""
    b = np.repeat(np.arange(len(samples)), samples.shape[1])
    flat = (b * num_classes + labels[samples].ravel()) * num_classes + predicted[samples].ravel()
    counts = np.bincount(flat, minlength=len(samples) * num_classes * num_classes)
    return counts.reshape(len(samples), num_classes, num_classes)


def _safe_divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b with 0 where b is 0 (scikit-learn's ``zero_division=0``)."""
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)


def metrics_from_confusion(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, kappa and per-class precision/recall/F1 of confusion matrices (..., C, C).

    Rows are true classes, columns predicted ones. Kappa is NaN where it is undefined
    (every label and prediction in one class).
    """
    cm = cm.astype(np.float64)
    n = cm.sum(axis=(-2, -1))
    diagonal = np.diagonal(cm, axis1=-2, axis2=-1)
    true_totals, predicted_totals = cm.sum(axis=-1), cm.sum(axis=-2)
    observed = diagonal.sum(-1) / n
    expected = (true_totals * predicted_totals).sum(-1) / n**2
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.where(expected < 1, (observed - expected) / (1 - expected), np.nan)
    precision, recall = _safe_divide(diagonal, predicted_totals), _safe_divide(diagonal, true_totals)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    return {"accuracy": observed, "cohen_kappa": kappa, "precision": precision, "recall": recall, "f1": f1}


def sample_losses(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Per-image log loss, with probabilities clipped and renormalised as in ``classification_metrics``."""
    clipped = np.clip(probabilities, 1e-7, 1.0)
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    return -np.log(clipped[np.arange(len(labels)), labels])


def bootstrap_metrics(labels: np.ndarray, probabilities: np.ndarray, class_names: list[str],
                      resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Point estimates and percentile-bootstrap confidence intervals of the metrics.

    Args:
        labels: True class indices (N,).
        probabilities: Predicted probabilities (N, C).
        class_names: The C class names.
        resamples: Bootstrap resamples (images drawn with replacement, N per resample).
        confidence: Interval coverage, e.g. 0.95.
        seed: Seed of the resampling.

    Returns:
        One row per metric: columns ``metric``, ``class`` ("" for accuracy, cohen_kappa and
        log_loss), ``estimate`` (on all images), ``low`` and ``high``.

    Example:
        >>> p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
        >>> table = bootstrap_metrics(np.array([0, 1, 0, 0]), p, ["a", "b"], resamples=200)
        >>> float(table.set_index("metric").loc["accuracy", "estimate"])
        0.75
    """
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    predicted, losses, c = probabilities.argmax(axis=1), sample_losses(labels, probabilities), len(class_names)
    samples = np.random.default_rng(seed).integers(0, len(labels), size=(resamples, len(labels)))
    full = metrics_from_confusion(_confusions(labels, predicted, np.arange(len(labels))[None], c))
    boot = metrics_from_confusion(_confusions(labels, predicted, samples, c))
    full["log_loss"], boot["log_loss"] = losses.mean()[None], losses[samples].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    rows = []
    for name in (*HEADLINE, *PER_CLASS):
        estimates = np.atleast_1d(full[name][0])
        with warnings.catch_warnings():  # an all-NaN column (kappa undefined everywhere) stays NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            low, high = np.nanpercentile(boot[name].reshape(resamples, -1), [tail, 100 - tail], axis=0)
        classes = class_names if name in PER_CLASS else [""]
        rows += [{"metric": name, "class": cls, "estimate": float(estimates[k]), "low": float(low[k]),
                  "high": float(high[k])} for k, cls in enumerate(classes)]
    return pd.DataFrame(rows, columns=["metric", "class", "estimate", "low", "high"])
