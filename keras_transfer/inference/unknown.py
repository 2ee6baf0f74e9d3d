"""'Unknown' rejection: is an image like any the model was trained on?

The score is the cosine distance from an image's L2-normalised backbone features to its k-th
nearest training image (Sun et al., 2022, "Out-of-distribution detection with deep nearest
neighbors"); an image farther than the threshold is flagged unknown. The threshold promises a
false-rejection rate (5%) on new images of the known classes: it is a cross-conformal quantile
(Vovk 2015; split conformal, Papadopoulos et al. 2002) of out-of-fold scores. The training images
are dealt into 5 folds, each fold's images are scored against the other folds only, and the
threshold is the ``ceil((n + 1)(1 - rate)) / n`` quantile of those n scores. A fold's images are
scored against fewer neighbours than a new image meets (the whole reference), so their distances
are if anything larger: the promise errs on the side of fewer false rejections. (Leave-one-out on
the same images, used before, flagged 7.2% of hymenoptera's held-out images instead of 5%.)
``evaluate --outliers`` and ``benchmarks/predict.py`` compare it with the energy score and the
maximum softmax probability. Exported ONNX / OpenVINO files compute it too (``unknown_score``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_transfer.base.paths import atomic_savez
K = 10
FALSE_REJECTION = 0.05
FOLDS = 5
MAX_REFERENCE = 5000  # training images kept as neighbours (a stratified-enough random subset beyond)


def normalise(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, np.float32)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class KnnUnknown:
    """k-NN distance scorer: ``reference`` (M, D) normalised training features, flagged above ``threshold``."""

    reference: np.ndarray
    k: int
    threshold: float

    def scores(self, features: np.ndarray, batch: int = 1024) -> np.ndarray:
        """1 - cosine similarity to the k-th nearest reference image (higher: more unknown)."""
        queries, out = normalise(features), np.empty(len(features), np.float32)
        for start in range(0, len(queries), batch):
            sims = queries[start:start + batch] @ self.reference.T
            out[start:start + batch] = 1 - np.partition(sims, -self.k, axis=1)[:, -self.k]
        return out

    def save(self, path: Path) -> None:
        atomic_savez(path, reference=self.reference.astype(np.float16), k=self.k, threshold=self.threshold)

    @classmethod
    def load(cls, path: Path) -> KnnUnknown:
        with np.load(path, allow_pickle=False) as saved:
            return cls(saved["reference"].astype(np.float32), int(saved["k"]), float(saved["threshold"]))


def conformal_quantile(scores: np.ndarray, rate: float) -> float:
    """The ``ceil((n + 1)(1 - rate))``-th smallest of ``n`` scores: a new exchangeable score exceeds it
    with probability at most ``rate`` (the largest score when n is too small to promise that)."""
    n = len(scores)
    if n == 0:
        return float("inf")
    rank = math.ceil((n + 1) * (1 - rate))
    return float(np.sort(scores)[min(rank, n) - 1])


def fit_unknown(features: np.ndarray, rate: float = FALSE_REJECTION, k: int = K, seed: int = 0,
                folds: int = FOLDS) -> KnnUnknown:
    """The scorer of training ``features`` (N, D), its threshold at ``rate`` false rejections
    (cross-conformal: the conformal quantile of each image's score against the other ``folds - 1`` folds)."""
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.permutation(len(features))[:MAX_REFERENCE])
    reference = normalise(features[keep])  # only these rows are read: a memory-mapped matrix stays on disk
    k = max(1, min(k, len(reference) - 1))
    if len(reference) < 2:
        return KnnUnknown(reference, k, float("inf"))
    fold = rng.permutation(len(reference)) % max(2, min(folds, len(reference)))
    scores = np.empty(len(reference), np.float32)
    for number in np.unique(fold):
        held = fold == number
        others = reference[~held]
        nearest = min(k, len(others))
        scores[held] = 1 - np.partition(reference[held] @ others.T, -nearest, axis=1)[:, -nearest]
    return KnnUnknown(reference, k, conformal_quantile(scores, rate))


METHOD = (f"{FOLDS}-fold cross-conformal quantile of out-of-fold k-NN distances (a random subset of at most "
          f"{MAX_REFERENCE} training images as the reference: the scorer's memory and time stay bounded)")


def auroc(known: np.ndarray, unknown: np.ndarray) -> float:
    """Probability that an unknown image scores above a known one (ties count half)."""
    scores = np.concatenate([known, unknown])
    ranks = np.empty(len(scores))
    order = np.argsort(scores, kind="mergesort")
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(scores[np.r_[np.diff(np.sort(scores)) == 0, False]]):  # average tied ranks
        ranks[scores == value] = ranks[scores == value].mean()
    n_known, n_unknown = len(known), len(unknown)
    return float((ranks[n_known:].sum() - n_unknown * (n_unknown + 1) / 2) / (n_known * n_unknown))


def fpr_at_95_tpr(known: np.ndarray, unknown: np.ndarray) -> float:
    """Share of unknown images accepted when the threshold accepts 95% of the known ones."""
    return float(np.mean(unknown <= np.quantile(known, 0.95)))


def energy_scores(features: np.ndarray, head) -> np.ndarray:
    """The energy score -logsumexp(logits) of a linear head (Liu et al. 2020): higher = more unknown."""
    logits = np.asarray(features, np.float32) @ head.kernel + head.bias
    top = logits.max(axis=1)
    return -(top + np.log(np.exp(logits - top[:, None]).sum(axis=1)))


def outlier_report(known_features: np.ndarray, outlier_features: np.ndarray, head, scorer: KnnUnknown) -> dict:
    """AUROC and FPR at 95% TPR, known vs outlier images, of the k-NN score (the one the run
    uses), the energy of the head's logits and 1 - max softmax (the two usual alternatives)."""
    rows = {"knn": (scorer.scores(known_features), scorer.scores(outlier_features)),
            "energy": (energy_scores(known_features, head), energy_scores(outlier_features, head)),
            "max_softmax": (1 - head.predict(known_features).max(1), 1 - head.predict(outlier_features).max(1))}
    report = {name: {"auroc": auroc(k, u), "fpr_at_95_tpr": fpr_at_95_tpr(k, u)} for name, (k, u) in rows.items()}
    known, outliers = rows["knn"]
    report["knn"].update(threshold=scorer.threshold, known_rejected=float(np.mean(known > scorer.threshold)),
                         outliers_flagged=float(np.mean(outliers > scorer.threshold)))
    return report
