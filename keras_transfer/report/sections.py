"""The report's sections, each built from the run context: text, tables, figures and data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from keras_transfer.base import log
from keras_transfer.evaluation.bootstrap import bootstrap_metrics
from keras_transfer.evaluation.calibration import calibration
from keras_transfer.report import exploration as explore
from keras_transfer.report import multilabel
from keras_transfer.report.audit_section import audit_section
from keras_transfer.report.context import ReportContext
from keras_transfer.report.exploration_figures import colors_figure, counts_figure, sizes_figure
from keras_transfer.report.figures import (confusion_figure, curves_figure, cv_figure, image_grid, metrics_figure,
                                           reliability_figure)
from keras_transfer.report.model import Plot, Section, Table
from keras_transfer.run import Files


def summary_section(ctx: ReportContext) -> Section:
    """The run: dataset, splits, backbone, strategy, evaluation split and training time."""
    config, run = ctx.run.config, ctx.run
    timing = run.read(Files.TIMING) or {}
    rows = [("run folder", str(run.path)), ("dataset", ctx.dataset.source),
            ("classes", f"{len(ctx.class_names)}: {', '.join(ctx.class_names[:12])}"
                        + (" ..." if len(ctx.class_names) > 12 else "")),
            ("images per split", ", ".join(f"{n} {len(s)}" for n, s in ctx.dataset.splits.items())),
            ("backbone", f"{config.backbone} ({config.weights or 'random'} weights, {config.size} px, "
                         f"{config.resize}, {config.pooling} pooling)"),
            ("strategy", config.strategy), ("evaluated on", f"{ctx.predictions.split} split, "
                                                            f"{len(ctx.predictions.labels)} images")]
    if timing:
        rows.append(("training time", f"{timing.get('total_seconds', 0):.1f} s "
                                      f"({timing.get('epochs', '?')} epochs)"))
    frame = pd.DataFrame(rows, columns=["", "value"])
    return Section("summary", "Run", [Table("", frame)], {"summary": dict(rows)})


def _interval(row) -> str:
    return f"{row.estimate:.3f} [{row.low:.3f}, {row.high:.3f}]"


def metrics_section(ctx: ReportContext) -> Section:
    """Headline and per-class metrics with bootstrap confidence intervals."""
    p, o = ctx.predictions, ctx.options
    table = bootstrap_metrics(p.labels, p.probabilities, ctx.class_names, o.resamples, seed=o.seed)
    labelled = table.assign(text=[_interval(r) for r in table.itertuples()])
    headline, per_class = labelled[labelled["class"] == ""], labelled[labelled["class"] != ""]
    overall = pd.DataFrame({"metric": headline["metric"].str.replace("_", " "), "estimate [95% CI]": headline["text"]})
    wide = per_class.pivot(index="class", columns="metric", values="text").reindex(ctx.class_names)
    wide = wide[["precision", "recall", "f1"]].rename(columns=lambda m: f"{m} [95% CI]")
    wide["support"] = np.bincount(p.labels, minlength=len(ctx.class_names))
    metrics = ctx.run.read(Files.METRICS) or {}
    held_out = ("held out: no choice (regularisation, epochs, backbone, strategy) was made on these images"
                if metrics.get("held_out") else "not held out: a choice was made on these images")
    intro = (f"Metrics on the {p.split} split ({len(p.labels)} images; {held_out}), with percentile-bootstrap "
             f"95% confidence intervals from {o.resamples} resamples of the images.")
    blocks = [intro]
    if "baseline" in metrics:
        b = metrics["baseline"]
        blocks.append(f"Baseline on the same images: {b['method']}, accuracy {b['accuracy']:.3f} "
                      f"(this model: {metrics['accuracy']:.3f}).")
    blocks += [ Table("overall", overall), Table("per class", wide, index=True),
              Plot("metrics", "Estimates with their 95% intervals", metrics_figure(table))]
    return Section("metrics", "Metrics", blocks, {"bootstrap": table})


def confusion_section(ctx: ReportContext) -> Section:
    """The confusion matrix, raw and normalised."""
    p, names = ctx.predictions, ctx.class_names
    matrix = np.zeros((len(names), len(names)), np.int64)
    np.add.at(matrix, (p.labels, p.predicted), 1)
    frame = pd.DataFrame(matrix, index=pd.Index(names, name="true"), columns=names)
    plot = Plot("confusion_matrix", "Rows: true class; columns: predicted class", confusion_figure(matrix, names))
    return Section("confusion", "Confusion matrix", [plot], {"confusion_matrix": frame})


def curves_section(ctx: ReportContext) -> Section:
    """Loss and accuracy per epoch from history.json."""
    history = ctx.run.read(Files.HISTORY) or {}
    selection = (ctx.run.read(Files.METRICS) or {}).get("selection") or {}
    if not any(history.values()) and selection.get("cv"):
        text = (f"The head was solved (full-batch L-BFGS), not trained by epochs: L2 strength C = {selection['C']:g} "
                f"chosen by {selection['folds']}-fold cross-validation inside the training images "
                f"(fit on {selection['fit_on']}); the held-out images played no part.")
        return Section("curves", "Head selection", [text, Plot("head_selection", "", cv_figure(selection["cv"]))],
                       {"history": history, "cv": selection["cv"]})
    if not any(history.values()):
        return Section("curves", "Training curves", ["This run recorded no per-epoch history."])
    text = (f"{len(history.get('loss', []))} epochs; early stopping restores the weights of the epoch with the "
            "lowest validation loss (dashed line).")
    return Section("curves", "Training curves", [text, Plot("training_curves", "", curves_figure(history))],
                   {"history": history})


def mistakes_section(ctx: ReportContext) -> Section:
    """The misclassified held-out images with the highest predicted probability."""
    p, names, split = ctx.predictions, ctx.class_names, ctx.dataset.splits[ctx.predictions.split]
    wrong = np.flatnonzero(p.predicted != p.labels)
    confidence = p.probabilities.max(axis=1)
    top = wrong[np.argsort(-confidence[wrong], kind="stable")][:ctx.options.mistakes]
    frame = pd.DataFrame({"image": [log.printable(Path(str(p.ids[i])).name) for i in top],
                          "true": [names[p.labels[i]] for i in top],
                          "predicted": [names[p.predicted[i]] for i in top],
                          "confidence": [round(float(confidence[i]), 4) for i in top]})
    if not len(top):
        return Section("mistakes", "Most confident mistakes",
                       [f"No mistakes among the {len(p.labels)} images of the {p.split} split."], {"mistakes": frame})
    images = [explore.thumbnail_of(split, int(p.indices[i])) for i in top]
    titles = [f"true {r.true}\npred {r.predicted} {r.confidence:.0%}" for r in frame.itertuples()]
    text = (f"{len(wrong)} of {len(p.labels)} images of the {p.split} split are misclassified; "
            f"the {len(top)} the model was surest about:")
    plot = Plot("mistakes", "", image_grid(images, titles, columns=min(6, len(top))))
    return Section("mistakes", "Most confident mistakes", [text, plot, Table("", frame)], {"mistakes": frame})


def _size_summary(sizes: pd.DataFrame) -> pd.DataFrame:
    """Min / median / max width and height per class."""
    if sizes.empty:
        return pd.DataFrame()
    stats = sizes.groupby("class", sort=False)[["width", "height"]].agg(["min", "median", "max"]).astype(int)
    stats.columns = [" ".join(c) for c in stats.columns]
    return stats


def dataset_section(ctx: ReportContext) -> Section:
    """Images per class and split, sample images, per-class colour densities and image sizes."""
    ds, o = ctx.dataset, ctx.options
    counts = explore.class_counts(ds)
    grid = explore.sample_grid(ds, o.per_class, o.seed)
    images = [img for row in grid.values() for img in row + [None] * (o.per_class - len(row))]
    sizes = explore.image_sizes(ds, o.sample, o.seed)
    densities = explore.color_densities(ds, o.sample, o.seed)
    shown = "" if len(grid) == len(ds.class_names) else f" (first {len(grid)} classes)"
    blocks = [Table("images per class and split", counts, index=True),
              Plot("class_counts", "", counts_figure(counts)),
              Plot("samples", f"Random training images{shown}",
                   image_grid(images, [""] * len(images), o.per_class, list(grid))),
              Plot("colour_distributions", f"Per-class RGB value densities (Gaussian KDE over {explore.THUMBNAIL} "
                                           f"px thumbnails of up to {o.sample} images)", colors_figure(densities)),
              Plot("image_sizes", f"Sizes read from the file headers of {len(sizes)} sampled images",
                   sizes_figure(sizes, ctx.run.config.size)),
              Table("image sizes (pixels, sampled)", _size_summary(sizes), index=True)]
    return Section("dataset", "Dataset", blocks, {"counts": counts, "sizes": sizes, "colour_densities": densities})


def calibration_section(ctx: ReportContext) -> Section:
    """Reliability diagram and expected calibration error of the top-class probability, before and
    after the run's calibration temperature."""
    p, bins, temperature = ctx.predictions, ctx.options.bins, ctx.run.temperature
    result = calibration(p.labels, p.probabilities, bins)
    text = (f"Expected calibration error (ECE) {result.ece:.3f}: the image-weighted mean gap between the "
            f"top-class probability and the accuracy, over {bins} confidence bins, on the {p.split} split.")
    blocks = [text]
    if temperature != 1.0 and ctx.raw is not None:
        before = calibration(ctx.raw.labels, ctx.raw.probabilities, bins)
        fit_on = (ctx.run.read(Files.CALIBRATION) or {}).get("fit_on", "a selection split")
        blocks += [f"Temperature scaling (T = {temperature:.3f}, fit on {fit_on}) took the ECE from "
                   f"{before.ece:.3f} to {result.ece:.3f}; it never changes the predicted class.",
                   Plot("reliability_before", "Before calibration (the head's own softmax)", reliability_figure(before))]
    frame = pd.DataFrame({"bin": [f"{a:.1f}-{b:.1f}" for a, b in zip(result.edges[:-1], result.edges[1:])],
                          "images": result.counts, "mean confidence": result.confidence.round(3),
                          "accuracy": result.accuracy.round(3)})
    title = "After calibration (what predict reports)" if len(blocks) > 1 else "Reliability diagram"
    blocks += [Plot("reliability", title, reliability_figure(result)), Table("bins", frame[frame["images"] > 0])]
    return Section("calibration", "Calibration", blocks, {"calibration": result})


SECTIONS = (summary_section, metrics_section, confusion_section, curves_section, mistakes_section,
            calibration_section, dataset_section, audit_section)
# several labels per image: no confusion matrix or softmax calibration; the data and audit sections
# count one class per image, so they are left out
MULTI_LABEL_SECTIONS = (summary_section, multilabel.metrics_section, multilabel.co_occurrence_section, curves_section,
                        multilabel.misses_section)
