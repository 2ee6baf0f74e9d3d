"""Small HTML pieces for Jupyter's ``_repr_html_`` (a run, an audit): escaped tables, a confusion
matrix, inline PNG thumbnails. Plain strings, no template engine; PIL only for the thumbnails."""

from __future__ import annotations

import base64
import html
import io

import numpy as np

STYLE = "border-collapse:collapse;font-size:12px;margin:4px 0"
CELL = "border:1px solid #ccc;padding:2px 6px;text-align:right"


def table(header: list[str], rows: list[list], caption: str | None = None) -> str:
    """An HTML table; floats to 3 places, every cell escaped."""
    def cell(value, tag: str = "td") -> str:
        text = f"{value:.3f}" if isinstance(value, float) else ("n/a" if value is None else str(value))
        return f"<{tag} style='{CELL}'>{html.escape(text)}</{tag}>"

    head = "".join(cell(h, "th") for h in header)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    title = f"<caption style='text-align:left'>{html.escape(caption)}</caption>" if caption else ""
    return f"<table style='{STYLE}'>{title}<tr>{head}</tr>{body}</table>"


def confusion(matrix: list[list[int]], names: list[str]) -> str:
    """The confusion matrix (rows: true class, columns: predicted), cells shaded by their share of the row."""
    matrix = np.asarray(matrix)
    rows = []
    for i, name in enumerate(names):
        total = max(int(matrix[i].sum()), 1)
        cells = "".join(f"<td style='{CELL};background:rgba(31,119,180,{matrix[i, j] / total:.2f})'>{matrix[i, j]}</td>"
                        for j in range(len(names)))
        rows.append(f"<tr><th style='{CELL}'>{html.escape(name)}</th>{cells}</tr>")
    head = "".join(f"<th style='{CELL}'>{html.escape(n)}</th>" for n in names)
    return (f"<table style='{STYLE}'><caption style='text-align:left'>confusion matrix (rows: true, columns: "
            f"predicted)</caption><tr><th style='{CELL}'></th>{head}</tr>{''.join(rows)}</table>")


def thumbnail(image: np.ndarray, caption: str, size: int = 96) -> str:
    """An RGB uint8 image as an inline base64 PNG with a caption under it."""
    from PIL import Image

    picture = Image.fromarray(np.asarray(image, dtype=np.uint8))
    picture.thumbnail((size, size))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (f"<figure style='display:inline-block;margin:4px;text-align:center;font-size:11px'>"
            f"<img src='data:image/png;base64,{data}' alt='{html.escape(caption)}'/>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def heading(text: str) -> str:
    return f"<h4 style='margin:6px 0'>{html.escape(text)}</h4>"


def paragraph(text: str) -> str:
    return f"<p style='margin:2px 0'>{html.escape(text)}</p>"
