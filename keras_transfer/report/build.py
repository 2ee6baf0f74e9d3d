"""Building a run's report and writing it: HTML (self-contained), PNG figures beside it, optional PDF."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from keras_transfer.base import log
from keras_transfer.report.context import ReportOptions, load_context
from keras_transfer.report.figures import png_bytes
from keras_transfer.report.html import render_html
from keras_transfer.report.model import Report, Table
from keras_transfer.report.sections import MULTI_LABEL_SECTIONS, SECTIONS
from keras_transfer.run import Run



@dataclass(frozen=True)
class ReportFiles:
    """What ``write_report`` wrote, and the report it wrote."""

    html: Path
    pdf: Path | None
    figures: list[Path]
    report: Report = field(repr=False)
    seconds: float = 0.0


def build_report(run: str | Path | Run, options: ReportOptions | None = None) -> Report:
    """Builds every section of a run's report: data, tables (DataFrames) and matplotlib figures.

    Args:
        run: The run folder.
        options: Sample sizes, bootstrap resamples, seed (defaults: :class:`ReportOptions`).

    Example:
        >>> report = build_report("runs/ants")  # doctest: +SKIP
        >>> report.section("calibration").data["calibration"].ece  # doctest: +SKIP
        0.031...
    """
    context = load_context(run, options)
    chosen = MULTI_LABEL_SECTIONS if context.dataset.multi_label else SECTIONS
    sections = [build(context) for build in log.progress(chosen, desc="report", unit="section")]
    return Report(f"keras-transfer report: {context.run.path.name}", sections)


def _text_page(report: Report) -> Figure:
    """First PDF page: the title and the run and metrics tables as text."""
    figure = Figure(figsize=(8.27, 11.69))
    lines = [report.title, ""]
    for section in report.sections[:2]:
        lines += [section.title.upper()]
        for block in section.blocks:
            if isinstance(block, Table):
                lines += [block.caption] * bool(block.caption) + block.frame.to_string(index=block.index).splitlines() + [""]
    figure.text(0.06, 0.96, "\n".join(lines), va="top", ha="left", family="monospace", fontsize=7.5)
    return figure


def write_report(run: str | Path | Run, out: str | Path | None = None, pdf: bool = False,
                 options: ReportOptions | None = None) -> ReportFiles:
    """Writes ``report.html`` (one self-contained file), every figure as PNG, and optionally ``report.pdf``.

    Args:
        run: The run folder.
        out: Output folder (default ``<run>/report``).
        pdf: Also write every figure, after a text summary page, to ``report.pdf``.
        options: Report knobs (see :class:`ReportOptions`).

    Example:
        >>> files = write_report("runs/ants", pdf=True)  # doctest: +SKIP
        >>> files.html  # doctest: +SKIP
        PosixPath('runs/ants/report/report.html')
    """
    start = time.perf_counter()
    run = Run.open(run)
    report = build_report(run, options)
    out = Path(out) if out is not None else run.path / "report"
    out.mkdir(parents=True, exist_ok=True)
    pngs, files = {}, []
    for plot in report.plots:
        pngs[plot.name] = png_bytes(plot.figure)
        files.append(out / f"{plot.name}.png")
        files[-1].write_bytes(pngs[plot.name])
    meta = f"generated {datetime.now():%Y-%m-%d %H:%M} from {run.path}"
    html_path = out / "report.html"
    html_path.write_text(log.printable(render_html(report, pngs, meta)), encoding="utf-8")
    pdf_path = out / "report.pdf" if pdf else None
    if pdf_path is not None:
        with PdfPages(pdf_path) as pages:
            pages.savefig(_text_page(report))
            for plot in report.plots:
                pages.savefig(plot.figure)
    return ReportFiles(html_path, pdf_path, files, report, time.perf_counter() - start)
