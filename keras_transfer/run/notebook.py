"""A run shown in Jupyter (``Run._repr_html_``): held-out accuracy beside the baseline, the
per-class table, the confusion matrix and a few misclassified images as inline thumbnails."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from keras_transfer.base import html
from keras_transfer.data.images import read_image

if TYPE_CHECKING:  # the run folder imports this module when it is displayed
    from keras_transfer.run.folder import Run

MISTAKES_SHOWN = 6


def run_html(run: Run) -> str:
    """The HTML a notebook shows for a run folder."""
    metrics = run.metrics
    parts = [html.heading(f"run {run.path.name}: {run.config.backbone}, {len(run.class_names)} classes")]
    if "accuracy" not in metrics:
        return "".join(parts + [html.paragraph("no single-label accuracy in metrics.json")])
    line = f"held-out accuracy {metrics['accuracy']:.1%} on {metrics.get('evaluated_images', '?')}"
    if "baseline" in metrics:
        line += f"; pixel baseline {metrics['baseline']['accuracy']:.1%} on the same images"
    parts.append(html.paragraph(line))
    per_class = metrics.get("per_class") or {}
    parts.append(html.table(["class", "precision", "recall", "f1", "support"],
                            [[n, r.get("precision"), r.get("recall"), r.get("f1"), r.get("support")]
                             for n, r in per_class.items()]))
    if metrics.get("confusion_matrix"):
        parts.append(html.confusion(metrics["confusion_matrix"], metrics.get("class_names", run.class_names)))
    parts.append(mistakes_html(run))
    return "<div>" + "".join(parts) + "</div>"


def mistakes_html(run: Run, limit: int = MISTAKES_SHOWN) -> str:
    """The most confident held-out mistakes, as thumbnails captioned true -> predicted (probability)."""
    predictions = run.predictions()
    if predictions is None or predictions.probabilities.ndim != 2 or predictions.labels.ndim != 1:
        return ""
    probabilities = predictions.with_temperature(run.temperature).probabilities
    wrong = np.flatnonzero(predictions.predicted != predictions.labels)
    wrong = wrong[np.argsort(-probabilities[wrong].max(axis=1))][:limit]
    names, figures = run.class_names, []
    for i in wrong:
        try:
            image = read_image(str(predictions.ids[i]))
        except (OSError, ValueError):  # an array dataset (ids like val[3]) or a file gone since
            continue
        figures.append(html.thumbnail(image, f"{names[predictions.labels[i]]} -> {names[predictions.predicted[i]]} "
                                             f"({probabilities[i].max():.0%})"))
    if not figures:
        return ""
    return html.heading(f"misclassified held-out images ({len(wrong)} shown, most confident first)") + "".join(figures)
