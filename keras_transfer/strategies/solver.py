"""The default head solver: softmax regression on the whole feature matrix, fit in seconds.

Keras' epoch loop spends minutes on what is a convex problem. Here the features are
standardised, scikit-learn's full-batch L-BFGS fits a multinomial logistic regression, and the
L2 strength is chosen by stratified k-fold cross-validation on the training images only
(warm-started along the grid, so each fold costs about one fit). The standardisation is then
folded into the weights, so the head is a single ``Dense(softmax)`` on raw features.

Example:
    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.normal(0, 1, (40, 8)), rng.normal(2, 1, (40, 8))]).astype(np.float32)
    >>> y = np.repeat([0, 1], 40)
    >>> fit = fit_linear_head(x[None], y, 2)
    >>> bool((fit.head.predict(x).argmax(1) == y).mean() > 0.9)
    True
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

C_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)  # inverse L2 strength on standardised features
FOLDS = 5
MAX_ITER = 500


@dataclass(frozen=True)
class LinearHead:
    """``softmax(x @ kernel + bias)`` on raw (unstandardised) features (D,) -> C classes."""

    kernel: np.ndarray  # (D, C) float32
    bias: np.ndarray  # (C,) float32

    def predict(self, features: np.ndarray) -> np.ndarray:
        logits = np.asarray(features, np.float32) @ self.kernel + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        return weights / weights.sum(axis=1, keepdims=True)


@dataclass
class SolverFit:
    """A fitted head and how its regularisation was chosen (all on training images only).

    Attributes:
        head: The fitted head.
        C: The chosen inverse L2 strength.
        folds: Cross-validation folds used (0: too few images per class, the default C taken).
        cv: Per C, the mean out-of-fold log loss and accuracy.
        oof_probabilities: Out-of-fold probabilities of each training image at the chosen C
            (None without cross-validation), e.g. for calibration or label-error audits.
    """

    head: LinearHead
    C: float
    folds: int
    cv: dict[str, dict[str, float]] = field(default_factory=dict)
    oof_probabilities: np.ndarray | None = None

    def summary(self) -> dict:
        return {"solver": "lbfgs", "C": self.C, "folds": self.folds, "grid": list(C_GRID), "cv": self.cv,
                "chosen_on": "cross-validation inside the training images" if self.folds else "default C"}


def _model(C: float, class_weight: str | None, seed: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=MAX_ITER, tol=1e-4, class_weight="balanced" if class_weight else None,
                              warm_start=True, random_state=seed)


def _fit(model, x: np.ndarray, y: np.ndarray):
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a few more iterations change nothing visible
        return model.fit(x, y)


def _full_probabilities(model, x: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities over all ``n_classes`` (classes absent from the fit get 0)."""
    out = np.zeros((len(x), n_classes), np.float64)
    out[:, model.classes_] = model.predict_proba(x)
    return out


def _views_rows(views: np.ndarray, images: np.ndarray) -> np.ndarray:
    """Rows of the flattened (V * N, D) matrix holding every view of ``images``."""
    n = views.shape[1]
    return (np.arange(views.shape[0])[:, None] * n + images[None]).ravel()


def cross_validate(views: np.ndarray, y: np.ndarray, n_classes: int, class_weight: str | None = None,
                   seed: int = 0, folds: int = FOLDS) -> tuple[dict, np.ndarray | None, int]:
    """Mean out-of-fold log loss and accuracy per C of the grid, folds split by image.

    Args:
        views: Standardised features (V, N, D): view 0 the originals, the rest augmented views
            (training rows use every view of an image; scoring uses the originals only).
        y: Labels (N,).

    Returns:
        (per-C scores, out-of-fold probabilities (len(C_GRID), N, n_classes), folds used);
        (``{}``, None, 0) when a class has fewer than two images.
    """
    from sklearn.model_selection import StratifiedKFold

    folds = min(folds, int(np.bincount(y)[np.unique(y)].min()))
    if folds < 2:
        return {}, None, 0
    flat = views.reshape(-1, views.shape[-1])
    oof = np.zeros((len(C_GRID), len(y), n_classes))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "the least populated class has only N members"
        splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
    for train, test in splits:
        model = _model(C_GRID[0], class_weight, seed)
        rows = _views_rows(views, train)
        for i, C in enumerate(C_GRID):  # increasing C, each fit warm-started from the last
            _fit(model.set_params(C=C), flat[rows], np.tile(y[train], views.shape[0]))
            oof[i, test] = _full_probabilities(model, views[0, test], n_classes)
    scores = {}
    for i, C in enumerate(C_GRID):
        p = np.clip(oof[i][np.arange(len(y)), y], 1e-7, 1)
        scores[f"{C:g}"] = {"log_loss": float(-np.log(p).mean()), "accuracy": float((oof[i].argmax(1) == y).mean())}
    return scores, oof, folds


def fit_linear_head(views: np.ndarray, y: np.ndarray, n_classes: int, class_weight: str | None = None,
                    seed: int = 0, C: float | None = None) -> SolverFit:
    """Fits the softmax head on every training image; C by cross-validation unless given.

    Args:
        views: Raw features (V, N, D) of the training images (V >= 1 views, view 0 the originals).
        y: Integer labels (N,).
        n_classes: Number of classes (columns of the head), also those absent from ``y``.
        class_weight: ``"auto"``: balanced class weights.
        seed: Fold assignment.
        C: Skip cross-validation and use this inverse L2 strength.
    """
    views = np.asarray(views, np.float32)
    flat = views.reshape(-1, views.shape[-1])
    mean, std = flat.mean(axis=0), flat.std(axis=0)
    std[std < 1e-6] = 1.0
    scaled = (views - mean) / std
    cv, oof, folds = ({}, None, 0) if C is not None else cross_validate(scaled, y, n_classes, class_weight, seed)
    best = 0
    if C is None and cv:
        best = int(np.argmin([cv[f"{c:g}"]["log_loss"] for c in C_GRID]))
    chosen = C if C is not None else (C_GRID[best] if cv else 0.1)
    model = _fit(_model(chosen, class_weight, seed), scaled.reshape(-1, views.shape[-1]), np.tile(y, views.shape[0]))
    kernel = np.zeros((views.shape[-1], n_classes), np.float64)
    bias = np.full(n_classes, -30.0)  # a class with no training image is never predicted
    coef = model.coef_ if len(model.classes_) > 2 else np.stack([-model.coef_[0], model.coef_[0]]) / 2
    intercept = model.intercept_ if len(model.classes_) > 2 else np.array([-1, 1]) * model.intercept_[0] / 2
    kernel[:, model.classes_] = (coef / std).T  # (x - mean) / std @ W + b == x @ (W / std) + (b - mean / std @ W)
    bias[model.classes_] = intercept - (mean / std) @ coef.T
    head = LinearHead(kernel.astype(np.float32), bias.astype(np.float32))
    return SolverFit(head, float(chosen), folds, cv, None if oof is None else oof[best])
