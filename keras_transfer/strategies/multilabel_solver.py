"""The solved head for several labels per image: one sigmoid per label, thresholds chosen by
cross-validation inside the training images.

One-vs-rest logistic regression, all labels solved together by full-batch L-BFGS on the
standardised features (the objective of scikit-learn's ``LogisticRegression`` per label, summed:
``mean(sum_l BCE_il) + ||W||^2 / (2 C N)``, intercepts unpenalised). C is chosen on the mean
out-of-fold binary cross-entropy along ``C_GRID`` (warm-started, stopped past the minimum), the
folds cut by iterative stratification. Each label's decision threshold then maximises its
F-beta (F1 by default) on the out-of-fold probabilities at the chosen C; a label with too few
positives there keeps 0.5 (stated in the summary).
"""

from __future__ import annotations

import numpy as np

from keras_transfer.data.dataset import stratified_folds
from keras_transfer.data.multilabel import iterative_stratify
from keras_transfer.inference.head import LinearHead, sigmoid
from keras_transfer.strategies.solver import C_GRID, CV_IMAGES, FOLDS, MAX_ITER, TOL, SolverFit, _views_rows

THRESHOLD_METRICS = {"f1": 1.0, "f2": 2.0, "f0.5": 0.5}  # name -> beta of the F-beta a threshold maximises
DEFAULT_THRESHOLD = 0.5
MIN_POSITIVES = 3  # out-of-fold positives a label needs for its threshold to be chosen


def sigmoid_regression(x: np.ndarray, y: np.ndarray, C: float, start: np.ndarray | None = None) -> np.ndarray:
    """Minimises ``mean_i sum_l BCE(y_il, sigmoid(z_il)) + ||W||^2 / (2 C N)`` over W (D + 1, L) (last row: bias)."""
    from scipy.optimize import minimize

    n, d = x.shape
    labels = y.shape[1]
    targets = y.astype(np.float32)
    penalty = 1.0 / (C * n)

    def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
        w = flat.reshape(d + 1, labels).astype(np.float32)
        logits = x @ w[:-1] + w[-1]
        loss = float((np.logaddexp(0, logits) - targets * logits).sum() / n) + 0.5 * penalty * float((w[:-1] ** 2).sum())
        residual = (sigmoid(logits) - targets) / n
        grad = np.empty_like(w)
        grad[:-1] = x.T @ residual + penalty * w[:-1]
        grad[-1] = residual.sum(axis=0)
        return loss, grad.ravel().astype(np.float64)

    first = np.zeros((d + 1) * labels) if start is None else start.ravel()
    done = minimize(objective, first, jac=True, method="L-BFGS-B", options={"maxiter": MAX_ITER, "gtol": TOL})
    return done.x.reshape(d + 1, labels)


def binary_log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).sum(axis=1).mean())


def best_thresholds(y: np.ndarray, p: np.ndarray, beta: float = 1.0) -> tuple[np.ndarray, list[int]]:
    """Per label, the threshold maximising F-beta on (labels, probabilities); labels with fewer
    than ``MIN_POSITIVES`` positives keep ``DEFAULT_THRESHOLD``. Returns (thresholds, those labels)."""
    thresholds = np.full(y.shape[1], DEFAULT_THRESHOLD, np.float32)
    kept = []
    for label in range(y.shape[1]):
        truth, scores = y[:, label].astype(bool), p[:, label]
        if truth.sum() < MIN_POSITIVES or truth.all():
            kept.append(label)
            continue
        order = np.argsort(-scores, kind="mergesort")
        hits = np.cumsum(truth[order])  # true positives when the top k are called positive
        called = np.arange(1, len(order) + 1)
        f = (1 + beta**2) * hits / (beta**2 * truth.sum() + called)
        best = int(np.argmax(f))
        below = scores[order[best + 1]] if best + 1 < len(order) else 0.0
        thresholds[label] = (scores[order[best]] + below) / 2  # midway to the next image's score
    return thresholds, kept


def cross_validate(views: np.ndarray, y: np.ndarray, seed: int = 0, folds: int = FOLDS):
    """Mean out-of-fold binary log loss per C; (scores, (oof probabilities per C, labels), folds, solutions)."""
    if len(y) > CV_IMAGES:
        rows = np.flatnonzero(iterative_stratify(y, [CV_IMAGES, len(y) - CV_IMAGES], seed) == 0)
        views, y, folds = views[:, rows], y[rows], min(folds, 3)
    folds = min(folds, int(y.sum(axis=0)[y.sum(axis=0) > 0].min()), len(y))
    if folds < 2:
        return {}, None, 0, {}
    flat = views.reshape(-1, views.shape[-1])
    assignment = stratified_folds(y, folds, seed)
    splits = [(np.flatnonzero(assignment != k), np.flatnonzero(assignment == k)) for k in range(folds)]
    oof = np.zeros((len(C_GRID), *y.shape))
    scores: dict[str, dict[str, float]] = {}
    solutions: dict[float, np.ndarray] = {}
    last: list[np.ndarray | None] = [None] * folds
    for i, C in enumerate(C_GRID):
        for k, (train, test) in enumerate(splits):
            last[k] = sigmoid_regression(flat[_views_rows(views, train)], np.tile(y[train], (views.shape[0], 1)),
                                         C, last[k])
            oof[i, test] = sigmoid(views[0, test] @ last[k][:-1] + last[k][-1])
        solutions[C] = np.mean(last, axis=0)
        scores[f"{C:g}"] = {"log_loss": binary_log_loss(y, oof[i])}
        losses = [v["log_loss"] for v in scores.values()]
        if len(losses) >= 2 and losses[-1] > losses[-2] and losses[-1] > min(losses):
            break
    return scores, (oof[:len(scores)], y), folds, solutions


def fit_multilabel_head(views: np.ndarray, y: np.ndarray, seed: int = 0, metric: str = "f1",
                        C: float | None = None) -> SolverFit:
    """Fits one sigmoid per label on every training image; C and the thresholds by cross-validation.

    Args:
        views: Raw features (V, N, D) of the training images (view 0 the originals).
        y: Labels (N, L), 0/1.
        seed: Fold assignment.
        metric: What each label's threshold maximises: ``f1``, ``f2`` or ``f0.5``.
        C: Skip cross-validation of C (thresholds then stay at 0.5).
    """
    views = np.asarray(views, np.float32)
    flat = views.reshape(-1, views.shape[-1])
    mean, std = flat.mean(axis=0), flat.std(axis=0)
    std[std < 1e-6] = 1.0
    scaled = ((views - mean) / std).astype(np.float32)
    cv, oof, folds, starts = ({}, None, 0, {}) if C is not None else cross_validate(scaled, y, seed)
    best = int(np.argmin([v["log_loss"] for v in cv.values()])) if cv else 0
    chosen = C if C is not None else (C_GRID[best] if cv else 0.1)
    w = sigmoid_regression(scaled.reshape(-1, views.shape[-1]), np.tile(y, (views.shape[0], 1)), chosen,
                           starts.get(chosen))
    kernel = w[:-1] / std[:, None]
    bias = w[-1] - (mean / std) @ w[:-1]
    if oof is not None:
        thresholds, defaulted = best_thresholds(oof[1], oof[0][best], THRESHOLD_METRICS[metric])
    else:
        thresholds, defaulted = np.full(y.shape[1], DEFAULT_THRESHOLD, np.float32), list(range(y.shape[1]))
    head = LinearHead(kernel.astype(np.float32), bias.astype(np.float32), "sigmoid", thresholds)
    images = min(len(y), CV_IMAGES) if cv else 0
    how = {"metric": metric, "values": thresholds.tolist(), "default_for": defaulted,
           "chosen_on": f"out-of-fold probabilities of {images} training images" if cv
           else f"none chosen (too few images per label): {DEFAULT_THRESHOLD}"}
    return SolverFit(head, float(chosen), folds, cv, None if oof is None else oof[0][best],
                     None if oof is None else oof[1], images, how)
