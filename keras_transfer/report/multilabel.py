"""The report of a run whose images carry several labels: mAP and per-label figures, precision-
recall curves, label co-occurrence (true vs predicted) and the images with the worst misses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from keras_transfer.base import log
from keras_transfer.evaluation.multilabel import multilabel_metrics
from keras_transfer.report import exploration as explore
from keras_transfer.report.context import ReportContext
from keras_transfer.report.figures import _heatmap, image_grid
from keras_transfer.report.model import Plot, Section, Table


def _metrics(ctx: ReportContext) -> dict:
    thresholds = ctx.run.solved_head().thresholds
    p = ctx.predictions
    return multilabel_metrics(p.labels, p.probabilities, ctx.class_names, thresholds)


def pr_figure(labels: np.ndarray, probabilities: np.ndarray, names: list[str], thresholds: np.ndarray) -> Figure:
    """Precision-recall curve of every label, each label's decision threshold marked."""
    figure = Figure(figsize=(7, 5), layout="constrained")
    ax = figure.subplots()
    for i, name in enumerate(names):
        truth = labels[:, i].astype(bool)
        if not truth.any():
            continue
        order = np.argsort(-probabilities[:, i], kind="mergesort")
        hits = np.cumsum(truth[order])
        precision, recall = hits / np.arange(1, len(order) + 1), hits / truth.sum()
        line, = ax.plot(recall, precision, label=log.figure_text(name))
        called = probabilities[order, i] >= thresholds[i]
        if called.any():
            k = int(np.flatnonzero(called).max())
            ax.plot(recall[k], precision[k], "o", color=line.get_color())
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(title="label (dot: its threshold)", fontsize=8)
    return figure


def metrics_section(ctx: ReportContext) -> Section:
    m = _metrics(ctx)
    p = ctx.predictions
    overall = pd.DataFrame([("mAP (macro)", m["map_macro"]), ("mAP (micro)", m["map_micro"]),
                            ("F1 (micro)", m["f1_micro"]), ("F1 (macro)", m["f1_macro"]),
                            ("Hamming loss", m["hamming_loss"]), ("exact match", m["exact_match"]),
                            ("labels per image, true", m["cardinality"]["true"]),
                            ("labels per image, predicted", m["cardinality"]["predicted"])], columns=["metric", "value"])
    per_label = pd.DataFrame(m["per_label"]).T.reindex(ctx.class_names)
    intro = (f"Several labels per image. Metrics on the {p.split} split ({len(p.labels)} held-out images no "
             "choice was made on); a label is predicted when its probability reaches its threshold, chosen "
             "inside the training images." + (f" Not measured (no positive or no negative image): "
                                              f"{', '.join(m['not_measured'])}." if m["not_measured"] else ""))
    figure = pr_figure(p.labels, p.probabilities, ctx.class_names, np.array([r["threshold"] for r in m["per_label"].values()]))
    return Section("metrics", "Metrics", [intro, Table("overall", overall), Table("per label", per_label, index=True),
                                          Plot("pr_curves", "Precision-recall per label", figure)], {"metrics": m})


def co_occurrence_section(ctx: ReportContext) -> Section:
    m, names = _metrics(ctx), ctx.class_names
    figure = Figure(figsize=(2 * min(10.0, 3.0 + 0.3 * len(names)) + 1, min(10.0, 3.0 + 0.3 * len(names))),
                    layout="constrained")
    left, right = figure.subplots(1, 2)
    for ax, key in ((left, "true"), (right, "predicted")):
        _heatmap(ax, np.asarray(m["co_occurrence"][key]), names, f"{key} labels", "d")
        ax.set_xlabel("label")
        ax.set_ylabel("label")
    text = "Images carrying both labels (diagonal: images carrying the label), truth vs prediction."
    return Section("co_occurrence", "Label co-occurrence", [text, Plot("co_occurrence", "", figure)],
                   {"co_occurrence": m["co_occurrence"]})


def misses_section(ctx: ReportContext) -> Section:
    """The held-out images whose predicted label set is furthest from the truth."""
    p, names = ctx.predictions, ctx.class_names
    thresholds = ctx.run.solved_head().thresholds
    predicted = p.probabilities >= thresholds
    wrong = (predicted != p.labels.astype(bool)).sum(axis=1)
    surety = np.abs(p.probabilities - thresholds).sum(axis=1)
    top = [i for i in np.lexsort((-surety, -wrong)) if wrong[i]][:ctx.options.mistakes]

    def named(row) -> str:
        return ", ".join(n for n, on in zip(names, row) if on) or "none"

    frame = pd.DataFrame({"image": [log.printable(Path(str(p.ids[i])).name) for i in top],
                          "true": [named(p.labels[i]) for i in top], "predicted": [named(predicted[i]) for i in top],
                          "wrong labels": [int(wrong[i]) for i in top]})
    if not top:
        return Section("mistakes", "Worst misses", [f"Every label set of the {p.split} split is exactly right."])
    split = ctx.dataset.splits[p.split]
    images = [explore.thumbnail_of(split, int(p.indices[i])) for i in top]
    titles = [f"true {r.true}\npred {r.predicted}" for r in frame.itertuples()]
    text = (f"{int((wrong > 0).sum())} of {len(wrong)} images have a label set that is not exactly right; "
            f"the {len(top)} furthest from the truth:")
    return Section("mistakes", "Worst misses", [text, Plot("mistakes", "", image_grid(images, titles, min(6, len(top)))),
                                                Table("", frame)], {"mistakes": frame})
