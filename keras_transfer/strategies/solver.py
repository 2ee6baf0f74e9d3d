"""The default head solver: softmax regression on the whole feature matrix, fit in seconds.

Keras' epoch loop spends minutes on what is a convex problem. Here the features are
standardised and a multinomial logistic regression is fit by full-batch L-BFGS (SciPy's
``L-BFGS-B``), with the L2 strength C chosen by stratified k-fold cross-validation on the
training images only: warm-started along an increasing grid, stopped once the out-of-fold loss
has risen, on a stratified subsample of ``CV_IMAGES`` images for large sets; the final fit
starts from the folds' mean solution. The standardisation is then folded into the weights, so
the head is one ``Dense(softmax)`` on raw features. A matrix whose float32 copies exceed the
memory budget (or one stored on disk, a ``FeatureMatrix``) is solved by ``streaming.py``: the
same objective and choice of C, the final fit's gradient accumulated over chunks of rows.

Why not scikit-learn's ``LogisticRegression``, which solves the same problem (and which the
tests compare against): importing it costs ~2 s, two thirds of a cached default run, and its
per-fit overhead dominates the small cross-validation fits. The objective, in scikit-learn's
scaling, is ``mean(w_i * loss_i) + ||W||^2 / (2 C N)`` (intercepts unpenalised), computed with
float32 matrix products.

Example:
    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.normal(0, 1, (40, 8)), rng.normal(2, 1, (40, 8))]).astype(np.float32)
    >>> y = np.repeat([0, 1], 40)
    >>> fit = fit_linear_head(x[None], y, 2)
    >>> bool((fit.head.predict(x).argmax(1) == y).mean() > 0.9)
    True
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from keras_transfer.base.errors import DatasetError
from keras_transfer.data.dataset import stratified_folds
from keras_transfer.inference.head import LinearHead, softmax

C_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0)  # inverse L2 strength, standardised features
FOLDS = 5
MAX_ITER = 500
TOL = 1e-3  # projected-gradient tolerance; on CIFAR-10 900/class the test accuracy equals 1e-4's
CV_IMAGES = 2000  # larger training sets choose C on a stratified subsample of this many images, 3 folds


@dataclass
class SolverFit:
    """A fitted head and how its regularisation was chosen (all on training images only).

    Attributes:
        head: The fitted head.
        C: The chosen inverse L2 strength.
        folds: Cross-validation folds used (0: too few images per class, the default C taken).
        cv: Per C tried, the mean out-of-fold log loss and accuracy.
        oof_probabilities: Out-of-fold probabilities at the chosen C of the images the folds
            were cut from (None without cross-validation), e.g. to calibrate on.
        oof_labels: Their labels.
        cv_images: Training images the folds were cut from.
    """

    head: LinearHead
    C: float
    folds: int
    cv: dict[str, dict[str, float]] = field(default_factory=dict)
    oof_probabilities: np.ndarray | None = None
    oof_labels: np.ndarray | None = None
    cv_images: int = 0
    thresholds: dict = field(default_factory=dict)  # several labels per image: how the thresholds were chosen
    streaming: dict = field(default_factory=dict)  # solved over chunks (streaming.py): rows, passes, peak RSS

    def summary(self) -> dict:
        chosen_on = (f"{self.folds}-fold cross-validation on {self.cv_images} training images" if self.folds
                     else "default C (a class has fewer than two training images)")
        return {"solver": "lbfgs", "C": self.C, "folds": self.folds, "grid": list(C_GRID), "cv": self.cv,
                "cv_images": self.cv_images, "chosen_on": chosen_on,
                **({"thresholds": self.thresholds} if self.thresholds else {}),
                **({"streaming": self.streaming} if self.streaming else {})}


def sample_weights(y: np.ndarray, n_classes: int, class_weight: str | None) -> np.ndarray:
    """1 per sample, or ``"auto"``: n / (classes present * count of the sample's class) (balanced)."""
    if class_weight != "auto":
        return np.ones(len(y), np.float32)
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    present = np.count_nonzero(counts)
    return (len(y) / (present * counts[y])).astype(np.float32)


def softmax_regression(x: np.ndarray, y: np.ndarray, n_classes: int, C: float, weights: np.ndarray,
                       start: np.ndarray | None = None) -> np.ndarray:
    """Minimises ``mean(w_i * cross-entropy_i) + ||W||^2 / (2 C N)`` over W (D + 1, K) (last row: bias)."""
    from scipy.optimize import minimize

    n, d = x.shape
    targets = np.zeros((n, n_classes), np.float32)
    targets[np.arange(n), y] = 1
    scale = (weights / n).astype(np.float32)[:, None]
    penalty = 1.0 / (C * n)

    def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
        w = flat.reshape(d + 1, n_classes).astype(np.float32)
        logits = x @ w[:-1] + w[-1]
        logits -= logits.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(logits).sum(axis=1, keepdims=True))
        loss = float(-(scale * (targets * (logits - log_norm))).sum()) + 0.5 * penalty * float((w[:-1] ** 2).sum())
        residual = scale * (np.exp(logits - log_norm) - targets)
        grad = np.empty_like(w)
        grad[:-1] = x.T @ residual + penalty * w[:-1]
        grad[-1] = residual.sum(axis=0)
        return loss, grad.ravel().astype(np.float64)

    first = np.zeros((d + 1) * n_classes) if start is None else start.ravel()
    done = minimize(objective, first, jac=True, method="L-BFGS-B", options={"maxiter": MAX_ITER, "gtol": TOL})
    return done.x.reshape(d + 1, n_classes)


def _views_rows(views: np.ndarray, images: np.ndarray) -> np.ndarray:
    """Rows of the flattened (V * N, D) matrix holding every view of ``images``."""
    n = views.shape[1]
    return (np.arange(views.shape[0])[:, None] * n + images[None]).ravel()


def subsample(y: np.ndarray, count: int, seed: int) -> np.ndarray:
    """About ``count`` indices, each class in proportion (at least 2 of each), sorted."""
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(y == label))[:max(2, round(count * np.mean(y == label)))]
            for label in np.unique(y)]
    return np.sort(np.concatenate(keep))


def cross_validate(views: np.ndarray, y: np.ndarray, n_classes: int, class_weight: str | None = None,
                   seed: int = 0, folds: int = FOLDS,
                   sampled: bool = False) -> tuple[dict, np.ndarray | None, int, dict]:
    """Mean out-of-fold log loss and accuracy per C of the grid, folds split by image.

    Args:
        views: Standardised features (V, N, D): view 0 the originals, the rest augmented views
            (training rows use every view of an image; scoring uses the originals only).
        y: Labels (N,).
        sampled: The views are already ``subsample(y, CV_IMAGES, seed)`` of a larger set (3 folds).

    Returns:
        (per-C scores, out-of-fold probabilities (len(scores), M, n_classes) and labels (M,) of
        the M images the folds were cut from, folds used, per-C mean fold solutions);
        (``{}``, None, 0, {}) when a class has fewer than two images.
    """
    if sampled:
        folds = min(folds, 3)
    elif len(y) > CV_IMAGES:
        rows = subsample(y, CV_IMAGES, seed)
        views, y, folds = views[:, rows], y[rows], min(folds, 3)
    folds = min(folds, int(np.bincount(y)[np.unique(y)].min()))
    if folds < 2:
        return {}, None, 0, {}
    flat = views.reshape(-1, views.shape[-1])
    assignment = stratified_folds(y, folds, seed)
    splits = [(np.flatnonzero(assignment != k), np.flatnonzero(assignment == k)) for k in range(folds)]
    oof = np.zeros((len(C_GRID), len(y), n_classes))
    scores: dict[str, dict[str, float]] = {}
    solutions: dict[float, np.ndarray] = {}
    last: list[np.ndarray | None] = [None] * folds
    for i, C in enumerate(C_GRID):  # increasing C, each fold's fit warm-started from its last
        for k, (train, test) in enumerate(splits):
            labels = np.tile(y[train], views.shape[0])
            last[k] = softmax_regression(flat[_views_rows(views, train)], labels, n_classes, C,
                                         sample_weights(labels, n_classes, class_weight), last[k])
            oof[i, test] = softmax(views[0, test] @ last[k][:-1] + last[k][-1])
        solutions[C] = np.mean(last, axis=0)
        p = np.clip(oof[i][np.arange(len(y)), y], 1e-7, 1)
        scores[f"{C:g}"] = {"log_loss": float(-np.log(p).mean()), "accuracy": float((oof[i].argmax(1) == y).mean())}
        losses = [v["log_loss"] for v in scores.values()]
        if len(losses) >= 2 and losses[-1] > losses[-2] and losses[-1] > min(losses):
            break  # past the minimum: larger C only overfits more (and converges slower)
    return scores, (oof[:len(scores)], y), folds, solutions


def fit_linear_head(views, y: np.ndarray, n_classes: int, class_weight: str | None = None,
                    seed: int = 0, C: float | None = None, budget: int | None = None) -> SolverFit:
    """Fits the softmax head on every training image; C by cross-validation unless given.

    Args:
        views: Raw features (V, N, D) of the training images (V >= 1 views, view 0 the originals),
            or a ``FeatureMatrix`` on disk.
        y: Integer labels (N,).
        n_classes: Number of classes (columns of the head), also those absent from ``y``.
        class_weight: ``"auto"``: balanced class weights.
        seed: Fold assignment.
        C: Skip cross-validation and use this inverse L2 strength.
        budget: Bytes the in-memory solver may use (default: half the available memory); a
            larger matrix is solved streaming over chunks (``streaming.py``).
    """
    from keras_transfer.features.matrix import FeatureMatrix
    from keras_transfer.strategies.streaming import needs_streaming

    views = views if isinstance(views, FeatureMatrix) else np.asarray(views)
    rows, dim = (views.rows, views.dim) if isinstance(views, FeatureMatrix) else (np.prod(views.shape[:-1]),
                                                                                  views.shape[-1])
    if needs_streaming(int(rows), dim, budget):
        return fit_streaming_head(views, y, n_classes, class_weight, seed, C)
    views = np.asarray(views.array.reshape(views.views, -1, dim) if isinstance(views, FeatureMatrix) else views,
                       np.float32)
    flat = views.reshape(-1, views.shape[-1])
    mean, std = flat.mean(axis=0), flat.std(axis=0)
    std[std < 1e-6] = 1.0
    scaled = ((views - mean) / std).astype(np.float32)
    cv, oof, folds, starts = ({}, None, 0, {}) if C is not None else cross_validate(scaled, y, n_classes,
                                                                                     class_weight, seed)
    best = int(np.argmin([v["log_loss"] for v in cv.values()])) if cv else 0  # in grid order
    chosen = C if C is not None else (C_GRID[best] if cv else 0.1)
    labels = np.tile(y, views.shape[0])
    w = softmax_regression(scaled.reshape(-1, views.shape[-1]), labels, n_classes, chosen,
                           sample_weights(labels, n_classes, class_weight), starts.get(chosen))
    return folded_fit(w, mean, std, y, n_classes, chosen, (cv, oof, folds, best))


def folded_fit(w: np.ndarray, mean: np.ndarray, std: np.ndarray, y: np.ndarray, n_classes: int, chosen: float,
               cross_validation: tuple) -> SolverFit:
    """The ``SolverFit`` of weights ``w`` on standardised features, the standardisation folded in."""
    cv, oof, folds, best = cross_validation
    absent = np.bincount(y, minlength=n_classes) == 0
    kernel = w[:-1] / std[:, None]  # (x - mean) / std @ W + b == x @ (W / std) + (b - mean / std @ W)
    bias = w[-1] - (mean / std) @ w[:-1]
    bias[absent] = -30.0  # a class with no training image is never predicted
    head = LinearHead(kernel.astype(np.float32), bias.astype(np.float32))
    return SolverFit(head, float(chosen), folds, cv, None if oof is None else oof[0][best],
                     None if oof is None else oof[1], min(len(y), CV_IMAGES) if cv else 0)


def fit_streaming_head(features, y: np.ndarray, n_classes: int, class_weight: str | None = None,
                       seed: int = 0, C: float | None = None) -> SolverFit:
    """``fit_linear_head`` on rows read a chunk at a time (``streaming.py``); ``streaming`` set in the fit.

    Args:
        features: A :class:`FeatureMatrix` (its labels are ``y``'s images, view-major rows), or
            in-memory views (V, N, D).
        y: Integer labels (N,) of the images.
        n_classes, class_weight, seed, C: As in ``fit_linear_head``.
    """
    from keras_transfer.base import log
    from keras_transfer.features.matrix import ArrayRows, FeatureMatrix
    from keras_transfer.strategies.streaming import CHUNK_ROWS, ChunkedObjective, moments, peak_rss_mb, \
        streaming_regression

    began, cpu = time.perf_counter(), time.process_time()
    if isinstance(features, FeatureMatrix):
        source, views = features, features.views
        take = features.views_of
    else:
        views, source = features.shape[0], ArrayRows(features.reshape(-1, features.shape[-1]))
        take = lambda images: np.asarray(features[:, np.sort(images)], np.float32)  # noqa: E731
    if len(y) * views != source.rows:
        raise DatasetError("labels do not match the feature matrix", f"{source.rows:,} rows / {views} views = "
                           f"{source.rows // max(views, 1):,} labels", f"{len(y):,} labels",
                           "pass the labels the matrix was written with (FeatureMatrix.labels)")
    mean, std = moments(source)
    cv, oof, folds, starts, sample = {}, None, 0, {}, np.arange(0)
    if C is None:
        sample = subsample(y, CV_IMAGES, seed) if len(y) > CV_IMAGES else np.arange(len(y))
        scaled = ((take(sample) - mean) / std).astype(np.float32)
        cv, oof, folds, starts = cross_validate(scaled, y[sample], n_classes, class_weight, seed,
                                                sampled=len(sample) < len(y))
    best = int(np.argmin([v["log_loss"] for v in cv.values()])) if cv else 0
    chosen = C if C is not None else (C_GRID[best] if cv else 0.1)
    labels = np.tile(y, views)
    objective = ChunkedObjective(source, labels, n_classes, chosen,
                                 sample_weights(labels, n_classes, class_weight), (mean, std))
    w = streaming_regression(objective, starts.get(chosen), MAX_ITER, TOL)
    fit = folded_fit(w, mean, std, y, n_classes, chosen, (cv, oof, folds, best))
    fit.streaming = {"rows": source.rows, "chunk_rows": CHUNK_ROWS, "passes": objective.passes,
                     "stored": "float16 on disk, memory-mapped" if isinstance(features, FeatureMatrix) else "in memory",
                     "seconds": round(time.perf_counter() - began, 1),
                     "cpu_seconds": round(time.process_time() - cpu, 1),
                     "peak_rss_mb": round(peak_rss_mb()),
                     "why": "the in-memory solver's float32 copies exceed the memory budget"}
    log.info(f"head solved streaming over {source.rows:,} rows in chunks of {CHUNK_ROWS}: {objective.passes} "
             f"passes, {fit.streaming['seconds']} s, peak RSS {fit.streaming['peak_rss_mb']:,} MB")
    return fit
