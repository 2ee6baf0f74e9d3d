"""Rendering a report as one self-contained HTML page: inline CSS, PNGs as data: URIs, no scripts."""

from __future__ import annotations

import base64
import html

from keras_transfer.report.model import Plot, Report, Table

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1d1d1f;
       max-width: 1100px; margin: 0 auto; padding: 24px 32px 64px; line-height: 1.45; }
h1 { font-size: 28px; margin-bottom: 4px; }
h2 { font-size: 21px; border-bottom: 2px solid #e5e5ea; padding-bottom: 4px; margin-top: 40px; }
h3 { font-size: 15px; margin: 18px 0 6px; color: #3a3a3c; }
nav { margin: 8px 0 16px; font-size: 14px; }
nav a { margin-right: 14px; color: #0a58ca; text-decoration: none; }
table { border-collapse: collapse; font-size: 14px; margin: 6px 0 14px; }
th, td { padding: 4px 12px; border-bottom: 1px solid #e5e5ea; text-align: left; }
th { background: #f5f5f7; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 10px 0 18px; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption { font-size: 13px; color: #6e6e73; margin-top: 4px; }
p.meta { color: #6e6e73; font-size: 13px; margin-top: 0; }
"""


def _cell(value) -> str:
    if isinstance(value, float):
        return f'<td class="num">{value:.4g}</td>'
    if isinstance(value, int) or hasattr(value, "dtype"):
        return f'<td class="num">{html.escape(str(value))}</td>'
    return f"<td>{html.escape(str(value))}</td>"


def render_table(table: Table) -> str:
    """A DataFrame as an escaped HTML table (numbers right-aligned)."""
    frame = table.frame
    head = ([html.escape(str(frame.index.name or ""))] if table.index else []) + [html.escape(str(c)) for c in frame.columns]
    rows = []
    for label, row in zip(frame.index, frame.itertuples(index=False)):
        cells = ([f"<th>{html.escape(str(label))}</th>"] if table.index else []) + [_cell(v) for v in row]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    caption = f"<h3>{html.escape(table.caption)}</h3>" if table.caption else ""
    header = "".join(f"<th>{h}</th>" for h in head)
    return f"{caption}<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def render_plot(plot: Plot, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    caption = f"<figcaption>{html.escape(plot.caption)}</figcaption>" if plot.caption else ""
    alt = html.escape(plot.caption or plot.name)
    return f'<figure id="fig-{plot.name}"><img src="data:image/png;base64,{data}" alt="{alt}">{caption}</figure>'


def render_html(report: Report, pngs: dict[str, bytes], meta: str = "") -> str:
    """The page: title, a table of contents, then every section with its blocks in order.

    Args:
        report: The report.
        pngs: PNG bytes of every plot, by plot name.
        meta: A line under the title (e.g. when it was generated).
    """
    parts = []
    for section in report.sections:
        body = []
        for block in section.blocks:
            if isinstance(block, Table):
                body.append(render_table(block))
            elif isinstance(block, Plot):
                body.append(render_plot(block, pngs[block.name]))
            else:
                body.append(f"<p>{html.escape(block)}</p>")
        parts.append(f'<section id="{section.id}"><h2>{html.escape(section.title)}</h2>{"".join(body)}</section>')
    nav = "".join(f'<a href="#{s.id}">{html.escape(s.title)}</a>' for s in report.sections)
    title = html.escape(report.title)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{title}</title><style>{STYLE}</style></head><body>"
            f'<h1>{title}</h1><p class="meta">{html.escape(meta)}</p><nav>{nav}</nav>'
            f"{''.join(parts)}</body></html>\n")
