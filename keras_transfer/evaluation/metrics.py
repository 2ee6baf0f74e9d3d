"""Classification metrics as a JSON-ready dict.

Computed from the confusion matrix in NumPy rather than with ``sklearn.metrics``, whose import
alone (~2 s) would double the time of a cached default run; ``tests/test_report_metrics.py``
checks every figure against scikit-learn.
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts (n_classes, n_classes): rows the true class, columns the predicted one."""
    return np.bincount(np.asarray(labels) * n_classes + np.asarray(predicted),
                       minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """top / bottom, 0 where bottom is 0 (scikit-learn's ``zero_division=0``)."""
    return np.divide(top, bottom, out=np.zeros(len(top)), where=bottom > 0)


def cohen_kappa(matrix: np.ndarray) -> float:
    n = matrix.sum()
    observed = np.trace(matrix) / n
    expected = float((matrix.sum(axis=0) * matrix.sum(axis=1)).sum()) / n ** 2
    return float("nan") if expected == 1 else float((observed - expected) / (1 - expected))


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
    matrix = confusion_matrix(labels, predicted, len(class_names))
    hits, support, chosen = np.diag(matrix).astype(np.float64), matrix.sum(axis=1), matrix.sum(axis=0)
    precision, recall = _ratio(hits, chosen), _ratio(hits, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    clipped = np.clip(probabilities, 1e-7, 1.0)
    clipped = clipped / clipped.sum(1, keepdims=True)
    return {
        "n": int(len(labels)),
        "accuracy": float(np.mean(predicted == labels)),
        "cohen_kappa": cohen_kappa(matrix),
        "log_loss": float(-np.log(clipped[np.arange(len(labels)), labels]).mean()),
        "per_class": {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                      for name, p, r, f, s in zip(class_names, precision, recall, f1, support)},
        "confusion_matrix": matrix.tolist(),
        "class_names": list(class_names),
    }


def format_metrics(metrics: dict) -> str:
    """A short human-readable table of the headline and per-class metrics."""
    lines = [f"accuracy {metrics['accuracy']:.4f}   kappa {metrics['cohen_kappa']:.4f}   "
             f"log loss {metrics['log_loss']:.4f}   (n={metrics['n']})",
             f"{'class':<20}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"]
    for name, m in metrics["per_class"].items():
        lines.append(f"{name[:20]:<20}{m['precision']:>10.3f}{m['recall']:>10.3f}{m['f1']:>10.3f}{m['support']:>9d}")
    return "\n".join(lines)
