"""What a report is made of: sections holding paragraphs, tables and figures, plus their data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from matplotlib.figure import Figure


@dataclass(frozen=True)
class Table:
    """A titled table; ``frame`` is shown with its index when ``index`` is True."""

    caption: str
    frame: pd.DataFrame
    index: bool = False


@dataclass(frozen=True)
class Plot:
    """A figure; ``name`` is its PNG file stem beside the report."""

    name: str
    caption: str
    figure: Figure


@dataclass
class Section:
    """One report section: an HTML anchor ``id``, a title, content blocks in order, and raw data."""

    id: str
    title: str
    blocks: list[str | Table | Plot] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    """A whole report.

    Example:
        >>> report = build_report("runs/ants")  # doctest: +SKIP
        >>> report.section("metrics").data["bootstrap"]  # doctest: +SKIP
    """

    title: str
    sections: list[Section]

    def section(self, id: str) -> Section:
        return next(s for s in self.sections if s.id == id)

    @property
    def plots(self) -> list[Plot]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Plot)]

    @property
    def tables(self) -> list[Table]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Table)]
