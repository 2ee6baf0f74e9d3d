"""Calibration of the top-label confidence: reliability bins and expected calibration error."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Calibration:
    """Reliability-diagram data of the top-label confidence.

    Attributes:
        edges: Bin edges (bins + 1,) over [0, 1].
        confidence: Mean confidence of the images in each bin (NaN for empty bins).
        accuracy: Share of correct predictions in each bin (NaN for empty bins).
        counts: Images per bin.
        ece: Expected calibration error: sum over bins of count / N * |accuracy - confidence|.
        mce: Maximum calibration error over the non-empty bins.
    """

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    counts: np.ndarray
    ece: float
    mce: float

    def as_dict(self) -> dict:
        return {"edges": self.edges.tolist(), "confidence": _nan_to_none(self.confidence),
                "accuracy": _nan_to_none(self.accuracy), "counts": self.counts.tolist(),
                "ece": self.ece, "mce": self.mce}


def _nan_to_none(values: np.ndarray) -> list:
    return [None if np.isnan(v) else float(v) for v in values]


def calibration(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> Calibration:
    """Bins the images by top-label confidence and compares confidence with accuracy.

    Args:
        labels: True class indices (N,).
        probabilities: Predicted probabilities (N, C).
        bins: Equal-width confidence bins over [0, 1].

    Example:
        >>> c = calibration(np.array([0, 1]), np.array([[0.9, 0.1], [0.7, 0.3]]), bins=10)
        >>> round(c.ece, 3)  # |1 - 0.9| / 2 + |0 - 0.7| / 2
        0.4
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == np.asarray(labels)).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)  # [k/bins, (k+1)/bins), 1.0 in the last
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(which, confidence, bins) / counts
        accuracy = np.bincount(which, correct, bins) / counts
    gaps = np.abs(accuracy - mean_confidence)
    filled = counts > 0
    ece = float((counts[filled] / counts.sum() * gaps[filled]).sum()) if filled.any() else 0.0
    mce = float(gaps[filled].max()) if filled.any() else 0.0
    return Calibration(edges, mean_confidence, accuracy, counts, ece, mce)
