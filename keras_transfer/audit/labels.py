"""Likely label errors: out-of-fold probabilities of the fast linear head, ranked by cleanlab.

The head is the one train fits (``strategies.solver``): C chosen by cross-validation, then
every image is scored by a head fit on the other folds, so no image is judged by a model that
saw its label. cleanlab's ``find_label_issues`` (confident learning) picks the suspects and
ranks them by self-confidence; its outlier score (``OutOfDistribution`` on the features)
marks images unlike any other in the set.
"""

from __future__ import annotations

import numpy as np

from keras_transfer.base import log
from keras_transfer.audit.files import muted
from keras_transfer.audit.pool import Pool
from keras_transfer.base.paths import NPZ_ERRORS, atomic_savez, cache_dir
from keras_transfer.data.dataset import stratified_folds
from keras_transfer.strategies.solver import FOLDS, fit_linear_head

MIN_PER_CLASS = 5  # fewer images in a class: out-of-fold probabilities say too little
OUTLIERS = 0.01  # share of images with the lowest outlier score reported (at most)


def out_of_fold(features: np.ndarray, labels: np.ndarray, n_classes: int, seed: int = 0) -> np.ndarray:
    """Probabilities (N, n_classes) of every image from a head that never saw it."""
    fit = fit_linear_head(features[None], labels, n_classes, seed=seed)
    folds = stratified_folds(labels, FOLDS, seed)
    probabilities = np.zeros((len(labels), n_classes))
    for k in log.progress(range(FOLDS), desc="out-of-fold head", unit="fold"):
        test = folds == k
        head = fit_linear_head(features[None, ~test], labels[~test], n_classes, C=fit.C).head
        probabilities[test] = head.predict(features[test])
    return probabilities


def cached_out_of_fold(features: np.ndarray, labels: np.ndarray, n_classes: int, key: str, seed: int) -> np.ndarray:
    """``out_of_fold``, saved in the audit cache under ``key`` (features identity, contents, labels, seed)."""
    path = cache_dir("audit") / f"oof-{key}.npz"
    try:
        with np.load(path, allow_pickle=False) as saved:
            if saved["probabilities"].shape == (len(labels), n_classes):
                return saved["probabilities"]
    except NPZ_ERRORS:
        pass
    probabilities = out_of_fold(features, labels, n_classes, seed)
    try:
        atomic_savez(path, probabilities=probabilities)
    except OSError:  # a read-only cache: the next audit fits the folds again
        pass
    return probabilities


def label_issues(pool: Pool, features: np.ndarray, rows: np.ndarray, seed: int = 0,
                 key: str | None = None) -> tuple[list[dict], dict]:
    """Suspected label errors (ranked, most likely first) and a summary of how they were found.

    Args:
        key: Cache key of the out-of-fold probabilities (None: not cached).
    """
    labels = pool.labels[rows]
    counts = np.bincount(labels, minlength=len(pool.class_names))
    present = counts[counts > 0]
    if len(present) < 2 or present.min() < MIN_PER_CLASS:
        return [], {"skipped": f"needs {MIN_PER_CLASS} images in every class (smallest has {int(present.min())})"}
    from cleanlab.filter import find_label_issues

    dense = np.flatnonzero(counts)  # classes with images: cleanlab wants every column to be used
    remap = np.full(len(counts), -1)
    remap[dense] = np.arange(len(dense))
    probabilities = (out_of_fold(features, remap[labels], len(dense), seed) if key is None
                     else cached_out_of_fold(features, remap[labels], len(dense), key, seed))
    # n_jobs=1: cleanlab's default forks a multiprocessing pool, and a fork beside the threads of
    # Ray / OpenVINO / the decoders can inherit a held lock and hang forever (seen in test_ray)
    ranked = find_label_issues(remap[labels], probabilities, return_indices_ranked_by="self_confidence", n_jobs=1)
    findings = []
    for r in ranked:
        given, suggested = int(remap[labels[r]]), int(np.argmax(probabilities[r]))
        if given == suggested:
            continue
        i = int(rows[r])
        findings.append({"kind": "label_issue", "score": round(float(probabilities[r, given]), 4),
                         "images": [pool.describe(i)], "given": pool.class_names[dense[given]],
                         "suggested": pool.class_names[dense[suggested]],
                         "evidence": {"p_given": round(float(probabilities[r, given]), 4),
                                      "p_suggested": round(float(probabilities[r, suggested]), 4)}})
    accuracy = float((probabilities.argmax(1) == remap[labels]).mean())
    return findings, {"method": "cleanlab find_label_issues on 5-fold out-of-fold probabilities of the linear head",
                      "out_of_fold_accuracy": round(accuracy, 4), "images": len(rows)}


def outliers(pool: Pool, features: np.ndarray, rows: np.ndarray) -> list[dict]:
    """The images least like the rest (cleanlab's k-NN outlier score on the features), at most 1%."""
    if len(rows) < 20:
        return []
    from cleanlab.outlier import OutOfDistribution

    with muted():  # it prints what it fits
        scores = OutOfDistribution().fit_score(features=features)
    threshold = min(float(np.quantile(scores, OUTLIERS)), float(np.median(scores)) / 2)
    low = np.flatnonzero(scores <= threshold)
    return [{"kind": "outlier", "score": round(float(scores[k]), 4), "images": [pool.describe(int(rows[k]))],
             "evidence": f"cleanlab outlier score {scores[k]:.3f} (median {np.median(scores):.3f})"}
            for k in low[np.argsort(scores[low])]]
