"""An audit shown in Jupyter (``AuditResult._repr_html_``): the one-line verdict, images per class
and split, findings per kind, and thumbnails of the first images involved."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keras_transfer.base import html
from keras_transfer.data.images import read_image

if TYPE_CHECKING:  # core imports this module when a result is displayed
    from keras_transfer.audit.core import AuditResult

FINDINGS_SHOWN = 6


def audit_html(result: AuditResult) -> str:
    """The HTML a notebook shows for an audit result."""
    splits = list(result.counts)
    parts = [html.heading(f"audit of {result.source} ({'full' if result.full else 'cheap'})"),
             html.paragraph(result.line()),
             html.table(["class", *splits], [[name, *(result.counts[s].get(name, 0) for s in splits)]
                                             for name in result.classes], caption="images per class and split")]
    found = {kind: n for kind, n in result.summary().items() if n}
    if found:
        parts.append(html.table(["finding", "count"], [[k.replace("_", " "), n] for k, n in found.items()]))
    figures = []
    for finding in result.findings[:FINDINGS_SHOWN]:
        image = finding["images"][0]
        try:
            pixels = read_image(image["file"])
        except (OSError, ValueError, KeyError):  # arrays (no file), damaged files
            continue
        figures.append(html.thumbnail(pixels, f"{finding['kind'].replace('_', ' ')}: {image.get('class', '')}"))
    if figures:
        parts.append(html.heading("first findings") + "".join(figures))
    return "<div>" + "".join(parts) + "</div>"
