"""Calibration of the top-label confidence: reliability bins and expected calibration error."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keras_transfer.data.dataset import stratified_folds
from keras_transfer.evaluation.metrics import sample_losses

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


# Below this many selection images no temperature is fit: on hymenoptera's 49 one came out at
# T = 0.40 (cross-validation inside them agreed) and doubled the held-out ECE (0.032 -> 0.058).
MIN_FIT_IMAGES = 100
# Above this many the temperature is fit on a random subset: one scalar needs no more images, and
# the folds' Brent searches over a million images' probabilities would cost minutes.
MAX_FIT_IMAGES = 50_000


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log(p) / T): the probabilities a head would give with its logits divided by T.

    log(p) equals the logits up to a per-row constant, which softmax ignores, so this works on
    any head's output. T = 1 returns ``probabilities`` unchanged.
    """
    if temperature == 1.0:
        return probabilities
    logits = np.log(np.maximum(np.asarray(probabilities, np.float64), 1e-30)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return (scaled / scaled.sum(axis=1, keepdims=True)).astype(np.float32)


def _log_loss(labels: np.ndarray, logp: np.ndarray, temperature: float) -> float:
    z = logp / temperature
    z = z - z.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(labels)), labels]))


def _log_probabilities(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(np.asarray(probabilities, np.float64), 1e-30))


def fit_temperature(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """The temperature T in [0.05, 20] minimising the log loss of ``apply_temperature`` (Guo et al. 2017).

    One scalar fit by SciPy's bounded Brent search on log T: it cannot change which class wins,
    only how confident the head is. Fit it on images the head was not trained on and that the
    reported figures do not come from (a selection split).
    """
    from scipy.optimize import minimize_scalar

    labels, logp = np.asarray(labels), _log_probabilities(probabilities)
    best = minimize_scalar(lambda log_t: _log_loss(labels, logp, np.exp(log_t)),
                           bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(best.x))


def cross_validated_temperature(labels: np.ndarray, probabilities: np.ndarray, folds: int = 5,
                                seed: int = 0) -> tuple[float, float]:
    """``fit_temperature`` on all the images if, fit fold by fold, it lowers the log loss of the
    images each fold leaves out; else 1.0 (a temperature fit on few images mostly fits noise).

    Returns:
        (temperature, mean out-of-fold log-loss gain over T = 1; <= 0 means T = 1 was kept).
    """
    labels = np.asarray(labels)
    fold = stratified_folds(labels, min(folds, max(2, np.bincount(labels).min())), seed)
    logp = _log_probabilities(probabilities)
    gains = []
    for k in np.unique(fold):
        left_out = fold == k
        t = fit_temperature(labels[~left_out], probabilities[~left_out])
        gains.append(_log_loss(labels[left_out], logp[left_out], 1.0) - _log_loss(labels[left_out], logp[left_out], t))
    gain = float(np.mean(gains))
    return (fit_temperature(labels, probabilities) if gain > 0 else 1.0), gain


def bounded_subset(count: int, limit: int = MAX_FIT_IMAGES, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most ``limit`` of ``count`` images (all of them when they are fewer)."""
    if count <= limit:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).permutation(count)[:limit])


def calibration_record(held_out, fit=None, why: str = "") -> dict:
    """How a run's confidences are calibrated, with ECE and log loss before/after on the held-out images.

    Args:
        held_out: ``Predictions`` of the held-out split (raw head output).
        fit: ``Predictions`` of the split the temperature is chosen on (None: no temperature, ``why``).
    """
    temperature, record = 1.0, {"method": "none", "why": why}
    if fit is not None and len(fit.labels) < MIN_FIT_IMAGES:
        record["why"] = (f"{fit.split} has {len(fit.labels)} images, fewer than {MIN_FIT_IMAGES}: a temperature "
                         "fit on so few mostly fits noise")
    elif fit is not None:
        kept = bounded_subset(len(fit.labels))
        temperature, gain = cross_validated_temperature(fit.labels[kept], fit.probabilities[kept])
        subset = f" (a random subset of {len(kept)})" if len(kept) < len(fit.labels) else ""
        record = {"method": "temperature scaling" if temperature != 1.0 else "none",
                  "fit_on": f"{fit.split}: {len(fit.labels)} images{subset}, none trained on or evaluated",
                  "cross_validated_log_loss_gain": gain,
                  "why": "" if temperature != 1.0 else "a temperature fit fold by fold on the selection split "
                                                       "did not lower the log loss of the images it left out"}
    after = apply_temperature(held_out.probabilities, temperature)
    record.update(temperature=temperature, evaluated_on=f"{held_out.split}: {len(held_out.labels)} held-out images")
    for name, probabilities in (("before", held_out.probabilities), ("after", after)):
        record[f"ece_{name}"] = calibration(held_out.labels, probabilities).ece
        record[f"log_loss_{name}"] = float(sample_losses(held_out.labels, probabilities).mean())
    return record
