"""Classification metrics as a JSON-ready dict."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


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
    classes = np.arange(len(class_names))
    predicted = probabilities.argmax(axis=1)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        labels, predicted, labels=classes, zero_division=0)
    clipped = np.clip(probabilities, 1e-7, 1.0)
    return {
        "n": int(len(labels)),
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "cohen_kappa": float(skm.cohen_kappa_score(labels, predicted, labels=classes)),
        "log_loss": float(skm.log_loss(labels, clipped / clipped.sum(1, keepdims=True), labels=classes)),
        "per_class": {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                      for name, p, r, f, s in zip(class_names, precision, recall, f1, support)},
        "confusion_matrix": skm.confusion_matrix(labels, predicted, labels=classes).tolist(),
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
