"""Metrics of several labels per image, as a JSON-ready dict (NumPy only, like ``metrics.py``;
``tests/test_multilabel.py`` checks them against scikit-learn).

Average precision is scikit-learn's: the precision at each positive, in decreasing score order,
averaged (no interpolation). A label with no positive or no negative among the images has no AP
and is left out of the macro mean (listed under ``not_measured``).
"""

from __future__ import annotations

import numpy as np

from keras_transfer.base.log import table


def average_precision(truth: np.ndarray, scores: np.ndarray) -> float | None:
    """AP of one ranking (None without positives or without negatives)."""
    truth = np.asarray(truth, bool)
    if truth.all() or not truth.any():
        return None
    order = np.argsort(-scores, kind="mergesort")
    scores, truth = scores[order], truth[order]
    last = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]  # the last of each run of tied scores
    hits = np.cumsum(truth)[last]
    precision = hits / (last + 1)
    recall_step = np.diff(np.r_[0, hits]) / truth.sum()
    return float((precision * recall_step).sum())


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros_like(tp, dtype=np.float64), where=denominator > 0)


def multilabel_metrics(labels: np.ndarray, probabilities: np.ndarray, class_names: list[str],
                       thresholds: np.ndarray | None = None) -> dict:
    """mAP (macro, micro), per-label AP / precision / recall / F1 at the thresholds, micro and macro
    F1, Hamming loss, exact-match ratio and label cardinality (true vs predicted).

    Args:
        labels: True labels (N, L), 0/1.
        probabilities: One probability per label (N, L).
        class_names: The L label names.
        thresholds: Per label (L,); a label is predicted at or above its threshold (default 0.5).
    """
    y = np.asarray(labels, bool)
    p = np.asarray(probabilities, np.float64)
    thresholds = np.full(y.shape[1], 0.5) if thresholds is None else np.asarray(thresholds, np.float64)
    predicted = p >= thresholds
    tp, fp, fn = (y & predicted).sum(0), (~y & predicted).sum(0), (y & ~predicted).sum(0)
    precision = np.divide(tp, tp + fp, out=np.zeros(len(tp)), where=(tp + fp) > 0)
    recall = np.divide(tp, tp + fn, out=np.zeros(len(tp)), where=(tp + fn) > 0)
    f1 = _f1(tp, fp, fn)
    ap = [average_precision(y[:, i], p[:, i]) for i in range(y.shape[1])]
    measured = [a for a in ap if a is not None]
    has_positives = y.sum(0) > 0
    micro_f1 = float(_f1(tp.sum(keepdims=True), fp.sum(keepdims=True), fn.sum(keepdims=True))[0])
    return {
        "n": int(len(y)), "multi_label": True,
        "map_macro": float(np.mean(measured)) if measured else None,
        "map_micro": average_precision(y.ravel(), p.ravel()),
        "f1_micro": micro_f1,
        "f1_macro": float(f1[has_positives].mean()) if has_positives.any() else None,
        "hamming_loss": float((y != predicted).mean()),
        "exact_match": float((y == predicted).all(axis=1).mean()),
        "cardinality": {"true": float(y.sum(1).mean()), "predicted": float(predicted.sum(1).mean())},
        "per_label": {name: {"ap": a, "precision": float(pr), "recall": float(r), "f1": float(f), "support": int(s),
                             "threshold": float(t)}
                      for name, a, pr, r, f, s, t in zip(class_names, ap, precision, recall, f1, y.sum(0), thresholds)},
        "not_measured": [name for name, a in zip(class_names, ap) if a is None],
        "co_occurrence": {"true": (y.T.astype(int) @ y.astype(int)).tolist(),
                          "predicted": (predicted.T.astype(int) @ predicted.astype(int)).tolist()},
        "class_names": list(class_names),
    }


def format_multilabel(metrics: dict) -> str:
    """The headline (mAP, F1, Hamming loss, exact match) and the per-label table."""
    def number(value, digits: int = 3) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    c = metrics["cardinality"]
    headline = (f"mAP {number(metrics['map_macro'], 4)} (micro {number(metrics['map_micro'], 4)})   "
                f"F1 micro {number(metrics['f1_micro'], 4)} macro {number(metrics['f1_macro'], 4)}   "
                f"Hamming loss {number(metrics['hamming_loss'], 4)}   exact match {number(metrics['exact_match'], 4)}   "
                f"labels per image {c['predicted']:.2f} predicted / {c['true']:.2f} true   (n={metrics['n']})")
    rows = [[name, number(m["ap"]), number(m["precision"]), number(m["recall"]), number(m["f1"]), m["support"],
             number(m["threshold"])] for name, m in metrics["per_label"].items()]
    return headline + "\n" + table(["label", "AP", "precision", "recall", "f1", "support", "threshold"], rows)
