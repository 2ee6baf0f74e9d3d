"""Evaluation figures: metric intervals, confusion matrices, training curves, image grids, reliability.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot (no global
state, no display backend needed); save it with ``figure.savefig``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from keras_transfer.base import log
from keras_transfer.evaluation.calibration import Calibration

DPI = 100


def png_bytes(figure: Figure) -> bytes:
    """A figure as PNG bytes, at the report's resolution."""
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()

TRAIN_COLOUR, VAL_COLOUR = "#1f77b4", "#d62728"


def metrics_figure(table: pd.DataFrame, max_rows: int = 40) -> Figure:
    """Point estimates with their confidence intervals on one axis (log loss left out).

    Per-class precision and recall are shown for up to 5 classes, per-class F1 for up to
    ``max_rows``; beyond that only the headline metrics.
    """
    classes = table.loc[table["class"] != "", "class"].nunique()
    shown = {"accuracy", "cohen_kappa"} | ({"precision", "recall", "f1"} if classes <= 5 else
                                           {"f1"} if classes + 2 <= max_rows else set())
    rows = table[table["metric"].isin(shown)].iloc[::-1]
    labels = [f"{m} ({c})" if c else m for m, c in zip(rows["metric"], rows["class"])]
    figure = Figure(figsize=(8, 0.8 + 0.32 * len(rows)), layout="constrained")
    ax = figure.add_subplot()
    y = np.arange(len(rows))
    errors = np.vstack([rows["estimate"] - rows["low"], rows["high"] - rows["estimate"]]).clip(min=0)
    ax.errorbar(rows["estimate"], y, xerr=errors, fmt="o", color=TRAIN_COLOUR, ecolor="#555", capsize=3)
    ax.set_yticks(y, labels)
    lowest = float(np.nanmin(rows["low"])) if rows["low"].notna().any() else 0.0
    ax.set_xlim(max(-1.0, np.floor((lowest - 0.05) * 10) / 10), 1.02)  # zoom onto the intervals
    ax.set_xlabel("estimate with 95% bootstrap interval")
    ax.grid(axis="x", alpha=0.3)
    return figure


def _heatmap(ax, values: np.ndarray, names: list[str], title: str, fmt: str) -> None:
    shown = ax.imshow(values, cmap="Blues", vmin=0)
    ticks, names = np.arange(len(names)), [log.figure_text(n) for n in names]
    many = len(names) > 12
    rotation = 90 if many else 45 if len(names) > 3 else 0
    ax.set_xticks(ticks, names, rotation=rotation, ha="right" if rotation == 45 else "center", fontsize=7 if many else None)
    ax.set_yticks(ticks, names, fontsize=7 if many else None)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if len(names) <= 20:
        threshold = values.max() / 2 if values.size else 0
        for (i, j), value in np.ndenumerate(values):
            ax.text(j, i, format(value, fmt), ha="center", va="center", fontsize=9 if len(names) <= 10 else 6,
                    color="white" if value > threshold else "black")
    ax.figure.colorbar(shown, ax=ax, shrink=0.8)


def confusion_figure(matrix: np.ndarray, names: list[str]) -> Figure:
    """The confusion matrix as two heatmaps: counts, and rows normalised to sum to 1 (recall)."""
    matrix = np.asarray(matrix)
    totals = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    side = min(10.0, 3.0 + 0.3 * len(names))
    stacked = len(names) > 12  # big matrices one above the other, each at full width
    figure = Figure(figsize=(side + 1, 2 * side) if stacked else (2 * side + 1, side), layout="constrained")
    left, right = figure.subplots(2 if stacked else 1, 1 if stacked else 2)
    _heatmap(left, matrix, names, "counts", "d")
    _heatmap(right, normalised, names, "normalised by true class", ".2f")
    return figure


def curves_figure(history: dict[str, list[float]]) -> Figure:
    """Loss and accuracy per epoch, train vs validation; the best validation-loss epoch marked."""
    figure = Figure(figsize=(10, 3.8), layout="constrained")
    for ax, metric in zip(figure.subplots(1, 2), ("loss", "accuracy")):
        for key, colour, label in ((metric, TRAIN_COLOUR, "train"), (f"val_{metric}", VAL_COLOUR, "validation")):
            values = history.get(key) or []
            ax.plot(np.arange(1, len(values) + 1), values, color=colour, label=label)
        if history.get("val_loss"):
            ax.axvline(int(np.argmin(history["val_loss"])) + 1, color="#777", ls="--", lw=1,
                       label="best val loss")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    return figure


def cv_figure(cv: dict[str, dict[str, float]]) -> Figure:
    """Out-of-fold log loss and accuracy against the L2 strength C; the chosen C marked."""
    shown = [m for m in ("log_loss", "accuracy") if m in next(iter(cv.values()))]  # several labels: log loss only
    figure = Figure(figsize=(5 * len(shown), 3.8), layout="constrained")
    grid = [float(c) for c in cv]
    best = grid[int(np.argmin([cv[c]["log_loss"] for c in cv]))]
    for ax, metric in zip(figure.subplots(1, len(shown), squeeze=False).flat, shown):
        ax.plot(grid, [cv[c][metric] for c in cv], marker="o", color=VAL_COLOUR, label="out-of-fold (train)")
        ax.axvline(best, color="#777", ls="--", lw=1, label=f"chosen C = {best:g}")
        ax.set_xscale("log")
        ax.set_xlabel("C (inverse L2 strength)")
        ax.set_title(metric.replace("_", " "))
        ax.grid(alpha=0.3)
        ax.legend()
    return figure


def image_grid(images: list[np.ndarray], titles: list[str], columns: int = 6,
               row_labels: list[str] | None = None) -> Figure:
    """Images in a grid, each titled; optional labels on the left of each row."""
    rows = max(1, -(-len(images) // columns))
    figure = Figure(figsize=(1.9 * columns + (1 if row_labels else 0), 2.15 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        if k < len(images) and images[k] is not None:
            ax.imshow(images[k])
            ax.set_title(log.figure_text(titles[k]), fontsize=8)
    for r, label in enumerate(row_labels or []):
        axes[r, 0].set_ylabel(log.figure_text(label), fontsize=11, rotation=0, ha="right", va="center")
    return figure


def reliability_figure(result: Calibration) -> Figure:
    """Reliability diagram (accuracy vs confidence per bin) above the histogram of confidences."""
    figure = Figure(figsize=(6.5, 6.5), layout="constrained")
    top, bottom = figure.subplots(2, 1, height_ratios=(3, 1), sharex=True)
    centres = (result.edges[:-1] + result.edges[1:]) / 2
    width = np.diff(result.edges)
    filled = result.counts > 0
    top.bar(centres[filled], result.accuracy[filled], width[filled], color=TRAIN_COLOUR, edgecolor="white",
            label="accuracy")
    top.bar(centres[filled], result.confidence[filled] - result.accuracy[filled], width[filled],
            bottom=result.accuracy[filled], fill=False, hatch="//", edgecolor=VAL_COLOUR,
            label="gap to mean confidence")
    top.plot([0, 1], [0, 1], ls="--", color="#444", label="perfect calibration")
    top.set_ylabel("accuracy")
    top.set_ylim(0, 1)
    top.set_title(f"expected calibration error {result.ece:.3f}   maximum {result.mce:.3f}")
    top.legend(loc="upper left")
    bottom.bar(centres, result.counts, width, color="#888", edgecolor="white")
    bottom.set_xlabel("confidence (top-class probability)")
    bottom.set_ylabel("images")
    bottom.set_xlim(0, 1)
    return figure
