"""Classification metrics as a JSON-ready dict.

Computed from confusion matrices in NumPy rather than with ``sklearn.metrics``, whose import
alone (~2 s) would double the time of a cached default run; the same functions, vectorised over
matrices, serve the bootstrap intervals (``bootstrap.py``). ``tests/test_report_metrics.py``
checks every figure against scikit-learn.
"""

from __future__ import annotations

import numpy as np

from keras_transfer.base.log import table
from keras_transfer.evaluation.multilabel import format_multilabel

def confusions(labels: np.ndarray, predicted: np.ndarray, samples: np.ndarray, num_classes: int) -> np.ndarray:
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
    """Per-image log loss, probabilities clipped to [1e-7, 1] and renormalised (as every log loss here)."""
    clipped = np.clip(probabilities, 1e-7, 1.0)
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    return -np.log(clipped[np.arange(len(labels)), labels])


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, class_names: list[str]) -> dict:
    """Accuracy, Cohen's kappa, log loss, per-class precision/recall/F1 and the confusion matrix.

    Args:
        labels: True class indices (N,).
        probabilities: Predicted class probabilities (N, C).
        class_names: Names of the C classes.

    Example:
        >>> m = classification_metrics(np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]]), ["a", "b"])
        >>> m["accuracy"]
        1.0
    """
    labels = np.asarray(labels, np.int64)
    predicted = probabilities.argmax(axis=1)
    matrix = confusions(labels, predicted, np.arange(len(labels))[None], len(class_names))[0]
    m = metrics_from_confusion(matrix)
    support = matrix.sum(1)
    present = support > 0
    return {
        "n": int(len(labels)),
        "accuracy": float(m["accuracy"]),
        "balanced_accuracy": float(m["recall"][present].mean()) if present.any() else None,  # mean recall
        "f1_macro": float(m["f1"][present].mean()) if present.any() else None,
        "imbalance": float(support[present].max() / support[present].min()) if present.any() else None,
        "cohen_kappa": float(m["cohen_kappa"]),
        "log_loss": float(sample_losses(labels, probabilities).mean()),
        "per_class": {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                      for name, p, r, f, s in zip(class_names, m["precision"], m["recall"], m["f1"], matrix.sum(1))},
        "confusion_matrix": matrix.tolist(),
        "class_names": list(class_names),
    }


IMBALANCED = 3.0  # largest / smallest class support above which balanced figures lead


def format_metrics(metrics: dict) -> str:
    """A short human-readable table of the headline and per-class (per-label) metrics."""
    if metrics.get("multi_label"):
        return format_multilabel(metrics)

    def number(value, digits: int) -> str:  # null in the JSON: not defined on these images
        return "n/a" if value is None else f"{value:.{digits}f}"

    headline = (f"accuracy {number(metrics['accuracy'], 4)}   kappa {number(metrics['cohen_kappa'], 4)}   "
                f"log loss {number(metrics['log_loss'], 4)}   (n={metrics['n']})")
    if (metrics.get("imbalance") or 1) > IMBALANCED:  # accuracy alone would hide the small classes
        headline = (f"balanced accuracy {number(metrics['balanced_accuracy'], 4)}   macro-F1 "
                    f"{number(metrics['f1_macro'], 4)}   (imbalanced classes: {metrics['imbalance']:.1f}x)   " + headline)
    rows = [[name, number(m["precision"], 3), number(m["recall"], 3), number(m["f1"], 3), m["support"]]
            for name, m in metrics["per_class"].items()]
    return headline + "\n" + table(["class", "precision", "recall", "f1", "support"], rows)
