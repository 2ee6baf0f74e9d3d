"""Bootstrap confidence intervals of the classification metrics, vectorised over resamples."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from keras_transfer.evaluation.metrics import confusions, metrics_from_confusion, sample_losses

HEADLINE = ("accuracy", "cohen_kappa", "log_loss")
PER_CLASS = ("precision", "recall", "f1")


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
    full = metrics_from_confusion(confusions(labels, predicted, np.arange(len(labels))[None], c))
    boot = metrics_from_confusion(confusions(labels, predicted, samples, c))
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
