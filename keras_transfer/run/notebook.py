"""A run shown in Jupyter (``Run._repr_html_``): held-out accuracy beside the baseline, the
per-class table, the confusion matrix and a few misclassified images as inline thumbnails; an
``evaluate`` result (``Evaluation``, a plain dict that also displays itself) the same way."""

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
    parts.append(class_tables(metrics, run.class_names))
    parts.append(mistakes_html(run))
    return "<div>" + "".join(parts) + "</div>"


def class_tables(metrics: dict, class_names: list[str]) -> str:
    """The per-class table and the confusion matrix of single-label metrics."""
    per_class = metrics.get("per_class") or {}
    parts = [html.table(["class", "precision", "recall", "f1", "support"],
                        [[n, r.get("precision"), r.get("recall"), r.get("f1"), r.get("support")]
                         for n, r in per_class.items()])]
    if metrics.get("confusion_matrix"):
        parts.append(html.confusion(metrics["confusion_matrix"], metrics.get("class_names", class_names)))
    return "".join(parts)


def _share(value) -> str:
    return "n/a" if value is None else f"{value:.1%}"


class Evaluation(dict):
    """What ``evaluate`` returns: its metrics dict as before (JSON, keys, equality), shown in
    Jupyter as the headline figures, the per-class table and the confusion matrix."""

    def _repr_html_(self) -> str:
        split, n = self.get("split", "?"), self.get("n", "?")
        if self.get("multi_label"):
            line = (f"mAP {_share(self.get('map_macro'))} (macro), micro-F1 {_share(self.get('f1_micro'))}, "
                    f"Hamming loss {self.get('hamming_loss', float('nan')):.3f} on {n} {split} images")
            rows = [[name, r.get("ap"), r.get("precision"), r.get("recall"), r.get("f1"), r.get("support"),
                     r.get("threshold")] for name, r in (self.get("per_label") or {}).items()]
            table = html.table(["label", "ap", "precision", "recall", "f1", "support", "threshold"], rows)
            return "<div>" + html.heading("evaluation") + html.paragraph(line) + table + "</div>"
        line = (f"accuracy {_share(self.get('accuracy'))}, balanced accuracy {_share(self.get('balanced_accuracy'))}, "
                f"macro-F1 {_share(self.get('f1_macro'))} on {n} {split} images")
        calibration = self.get("calibration") or {}
        parts = [html.heading("evaluation"), html.paragraph(line)]
        if "ece_after" in calibration:
            parts.append(html.paragraph(f"calibration error (ECE) {calibration['ece_before']:.3f} -> "
                                        f"{calibration['ece_after']:.3f} at temperature "
                                        f"{calibration['temperature']:.2f}"))
        parts.append(class_tables(self, list(self.get("class_names", []))))
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
