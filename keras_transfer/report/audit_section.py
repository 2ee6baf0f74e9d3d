"""The audit as a report section: duplicate groups and suspected label errors as thumbnails side
by side with their scores, damaged and odd files, class balance; also a page of its own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from keras_transfer.base import log
from keras_transfer.data.dataset import Split
from keras_transfer.report.context import ReportContext
from keras_transfer.report.exploration import thumbnail_of
from keras_transfer.report.figures import image_grid, png_bytes
from keras_transfer.report.model import Plot, Report, Section, Table

GROUPS = 10  # duplicate groups drawn
PER_GROUP = 4  # images drawn per group
SHOWN = 12  # label issues and odd files drawn


class _Thumbs:
    """Thumbnails by image id (a file path, or ``split[i]`` of an array dataset)."""

    def __init__(self, dataset):
        self.where = {}
        for split in (dataset.splits.values() if dataset is not None else []):
            self.where.update({name: (split, i) for i, name in enumerate(split.ids())})

    def __call__(self, name: str) -> np.ndarray | None:
        split, i = self.where.get(name) or (Split("file", [Path(name)], np.zeros(1, np.int64)), 0)
        return thumbnail_of(split, i)


def _short(name: str) -> str:
    path = Path(name)
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def _groups_plot(name: str, findings: list[dict], thumbs: _Thumbs) -> Plot:
    """Each group's images side by side, several groups to a row; the first image of a group is
    titled with its kind, scope and evidence, every image with its class and split."""
    shown = findings[:GROUPS]
    width = min(PER_GROUP, max(len(f["images"]) for f in shown))
    images, titles = [], []
    for finding in shown:
        members = finding["images"][:width]
        evidence = finding["evidence"]
        head = (f"near, cos {evidence['cosine']:.3f}, pHash {evidence['phash_bits']}" if isinstance(evidence, dict)
                else "identical bytes")
        images += [thumbs(m["file"]) for m in members] + [None] * (width - len(members))
        titles += [(f"{head}\n{finding['scope']}" if k == 0 else f"\n{_short(m['file'])[-24:]}")
                   + f"\n{m['class']} · {m['split']}" for k, m in enumerate(members)] + [""] * (width - len(members))
    caption = (f"{len(shown)} of {len(findings)} groups" if len(findings) > len(shown) else f"{len(shown)} groups")
    return Plot(name, caption + ", each group's images side by side (class · split under each title)",
                image_grid(images, titles, width * max(1, 6 // width)))


def _labels_plot(findings: list[dict], thumbs: _Thumbs) -> Plot:
    shown = findings[:SHOWN]
    titles = [f"filed {f['given']}\nlooks {f['suggested']} {f['evidence']['p_suggested']:.0%}" for f in shown]
    return Plot("audit_label_issues", f"The {len(shown)} likeliest label errors (of {len(findings)}), most likely first",
                image_grid([thumbs(f["images"][0]["file"]) for f in shown], titles, min(6, len(shown))))


def _files_table(findings: list[dict]) -> pd.DataFrame:
    return pd.DataFrame({"file": [log.printable(f["images"][0]["file"]) for f in findings],
                         "check": [f.get("check", f["kind"]) for f in findings],
                         "score": [f["score"] for f in findings],
                         "evidence": [str(f["evidence"])[:120] for f in findings]})


def audit_blocks(result) -> list:
    """The section's paragraphs, tables and figures for an :class:`AuditResult`."""
    thumbs, found = _Thumbs(result.dataset), result.summary()
    counts = pd.DataFrame(result.counts).reindex(result.classes)
    counts.index.name = "class"
    blocks = [f"{result.line()[len('audit: '):].capitalize()}. Audited {len(result.images)} images of "
              f"{result.source} (every split together); the data folder was only read.",
              Table("findings", pd.DataFrame({"finding": [k.replace("_", " ") for k in found],
                                              "count": list(found.values())})),
              Table("images per class and split", counts, index=True)]
    duplicates = result.of("exact_duplicate") + result.of("near_duplicate")
    if duplicates:
        blocks.append(_groups_plot("audit_duplicates", duplicates, thumbs))
    if result.calibration:
        c = result.calibration
        blocks.append(f"Near duplicates: feature cosine ≥ {c['cosine']:.3f} and pHash within {c['hash_bits']} bits, "
                      f"or cosine ≥ {c['floor']:.3f} and pHash within {c['strict_bits']} bits, or cosine ≥ "
                      f"{c['sure']:.3f}: thresholds measured on {c['copies']} resized, re-compressed, cropped and "
                      f"flipped copies of this dataset's own images.")
    if result.of("label_issue"):
        blocks.append(_labels_plot(result.of("label_issue"), thumbs))
    odd = result.of("damaged") + result.of("odd_file") + result.of("outlier")
    if odd:
        pictures = [(thumbs(f["images"][0]["file"]), f) for f in odd]
        drawable = [(p, f) for p, f in pictures if p is not None][:SHOWN]
        if drawable:
            blocks.append(Plot("audit_odd_files", "Odd files that decode (damaged ones are in the table only)",
                               image_grid([p for p, _ in drawable], [f"{f.get('check', f['kind'])} {f['score']:.2f}"
                                                                       for _, f in drawable], min(6, len(drawable)))))
        blocks.append(Table("damaged and odd files", _files_table(odd)))
    return blocks


def audit_section(ctx: ReportContext) -> Section:
    """The full audit of the run's dataset (its features come from the shared cache)."""
    from keras_transfer.audit import full_audit
    from keras_transfer.config import feature_source

    result = full_audit(ctx.dataset, feature_source(ctx.run.config, ctx.run.path), ctx.options.seed)
    return Section("audit", "Data audit", audit_blocks(result), {"audit": result.as_dict()})


def write_audit_page(result, path: Path) -> Path:
    """The audit alone as one self-contained HTML page."""
    from keras_transfer.base.paths import atomic_file
    from keras_transfer.report.html import render_html

    report = Report(f"keras-transfer audit: {Path(result.source).name}", [Section("audit", "Data audit",
                                                                                   audit_blocks(result))])
    text = render_html(report, {plot.name: png_bytes(plot.figure) for plot in report.plots}, f"audit of {result.source}")
    return atomic_file(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8", errors="surrogateescape"))
