"""The solved head on a feature matrix that does not fit in memory: the same objective, streamed.

``solver.fit_linear_head`` holds the features in float32 and makes a standardised copy: about
three times the matrix (a million default images: 46 GB). When that exceeds the memory budget
(half the memory available, :func:`memory_budget`), ``solver.fit_streaming_head`` fits it with
these pieces instead, on rows read a chunk at a time (a ``features.matrix.FeatureMatrix`` of
float16 rows on disk, or an in-memory array):

1. mean and standard deviation by one streaming pass (Chan et al.'s pairwise update, float64);
2. C chosen exactly as in memory: ``solver.cross_validate`` on the standardised views of a
   stratified subsample of ``solver.CV_IMAGES`` images;
3. the final fit by full-batch L-BFGS (SciPy) on every row, from the folds' mean solution, the
   loss and gradient of the multinomial logistic objective accumulated chunk by chunk: the same
   objective as ``solver.softmax_regression``, so the same solution up to float rounding.

Peak memory: the (D + 1, K) weights, one chunk (``CHUNK_ROWS`` rows in float32) and the labels;
the matrix stays on disk. The peak RSS is printed and recorded in the run's ``selection``.

Written by hand because no library does it: scikit-learn's ``LogisticRegression`` and SciPy's
optimisers take the whole matrix in memory. The out-of-core alternative, scikit-learn's
``SGDClassifier.partial_fit``, fits one-vs-rest binary models by stochastic gradient with its own
step schedule: a different objective, so a run's head (and its probabilities, which calibration
and the reports use) would change with the matrix's size. ``benchmarks/big_head.py`` measures it
side by side on the same rows (docs/performance.md).
"""

from __future__ import annotations

import os
import resource
import sys

import numpy as np

from keras_transfer.base import log
from keras_transfer.features.matrix import ArrayRows

CHUNK_ROWS = 4096  # 63 MB of float32 default features: a gradient pass stays near memory bandwidth
IN_MEMORY_COPIES = 3  # the float32 features, their standardised copy and the solver's temporaries


def memory_budget() -> int:
    """Bytes the in-memory solver may use: half of what the system has available now."""
    try:
        with open("/proc/meminfo") as handle:
            info = dict(line.split(":", 1) for line in handle)
        available = int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            available = 8 << 30  # no way to ask (Windows): assume a small laptop
    return available // 2


def needs_streaming(rows: int, dim: int, budget: int | None = None) -> bool:
    """Whether the in-memory solver's float32 copies of a (rows, dim) matrix exceed the budget."""
    return rows * dim * 4 * IN_MEMORY_COPIES > (memory_budget() if budget is None else budget)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB.

    Linux's ``VmHWM`` (this program's own peak; ``ru_maxrss`` also counts the parent's memory at
    the fork that started it), else ``getrusage``.
    """
    try:
        with open("/proc/self/status") as handle:
            return next(int(line.split()[1]) for line in handle if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KB on Linux


def moments(source: ArrayRows, chunk: int = CHUNK_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and standard deviation (population, as ``ndarray.std``) in one pass."""
    count, mean, m2 = 0, np.zeros(source.dim), np.zeros(source.dim)
    for _, block in log.progress(source.chunks(chunk), total=-(-source.rows // chunk), desc="head: mean/std",
                                 unit="chunk"):
        n, block_mean = len(block), block.mean(axis=0, dtype=np.float64)
        block_m2 = ((block - block_mean.astype(np.float32)) ** 2).sum(axis=0, dtype=np.float64)
        delta, total = block_mean - mean, count + n
        mean, m2, count = mean + delta * n / total, m2 + block_m2 + delta ** 2 * count * n / total, total
    std = np.sqrt(m2 / max(count, 1))
    std[std < 1e-6] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


class ChunkedObjective:
    """``solver.softmax_regression``'s loss and gradient on standardised rows, summed over chunks.

    The standardisation is folded into the weights instead of applied to every chunk (the same
    logits: ``(x - mean) / std @ W + b == x @ (W / std) + (b - mean / std @ W)``, and the
    gradient mapped back the same way): a third less CPU per pass, the gradient equal to 4e-7.
    """

    def __init__(self, source: ArrayRows, labels: np.ndarray, n_classes: int, C: float, weights: np.ndarray,
                 scaling: tuple[np.ndarray, np.ndarray], chunk: int = CHUNK_ROWS):
        self.source, self.labels, self.n_classes, self.chunk = source, labels, n_classes, chunk
        self.scale = (weights / len(labels)).astype(np.float32)
        self.penalty = 1.0 / (C * len(labels))
        self.mean, self.std = scaling
        self.passes = 0

    def __call__(self, flat: np.ndarray) -> tuple[float, np.ndarray]:
        d = self.source.dim
        w = flat.reshape(d + 1, self.n_classes).astype(np.float32)
        kernel = w[:-1] / self.std[:, None]
        bias = w[-1] - self.mean @ kernel
        raw, residual_sum, loss = np.zeros((d, self.n_classes)), np.zeros(self.n_classes), 0.0
        for start, x in self.source.chunks(self.chunk):
            rows, picked = np.arange(len(x)), self.labels[start:start + len(x)]
            logits = x @ kernel + bias
            logits -= logits.max(axis=1, keepdims=True)
            log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
            scale = self.scale[start:start + len(x)]
            loss -= float((scale * log_p[rows, picked]).sum(dtype=np.float64))
            residual = np.exp(log_p) * scale[:, None]
            residual[rows, picked] -= scale
            raw += x.T @ residual
            residual_sum += residual.sum(axis=0, dtype=np.float64)
        self.passes += 1
        grad = np.empty((d + 1, self.n_classes))
        centred = raw - self.mean[:, None].astype(np.float64) * residual_sum  # x.T @ r of standardised x, times std
        grad[:-1] = centred / self.std[:, None] + self.penalty * w[:-1]
        grad[-1] = residual_sum
        return loss + 0.5 * self.penalty * float((w[:-1] ** 2).sum()), grad.ravel()


def streaming_regression(objective: ChunkedObjective, start: np.ndarray | None, max_iter: int,
                         tol: float) -> np.ndarray:
    """Full-batch L-BFGS (SciPy) on the chunked objective; W (D + 1, K), last row the bias."""
    from scipy.optimize import minimize

    size = (objective.source.dim + 1) * objective.n_classes
    bar = log.progress(total=max_iter, desc="head: L-BFGS passes", unit="it")
    done = minimize(objective, np.zeros(size) if start is None else start.ravel(), jac=True, method="L-BFGS-B",
                    options={"maxiter": max_iter, "gtol": tol}, callback=lambda *_: bar.update(1))
    bar.close()
    return done.x.reshape(objective.source.dim + 1, objective.n_classes)
