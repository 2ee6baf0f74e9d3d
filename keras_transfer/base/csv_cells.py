"""CSV files that a spreadsheet opens as text: cells that would start a formula are neutralised.

OWASP's CSV-injection rule: a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return is prefixed with a single quote, so a class folder named ``=HYPERLINK(...)`` or a file
named ``+cmd.jpg`` shows as text, never runs. JSON outputs keep the exact names; numbers are
written as numbers (a negative number is not a formula).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value) -> object:
    """``value`` as a spreadsheet shows it as text: a string that starts a formula gets a leading ``'``.

    Example:
        >>> safe_cell("=HYPERLINK(1)"), safe_cell("bees"), safe_cell(-0.5)
        ("'=HYPERLINK(1)", 'bees', -0.5)
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_text(header: list[str], rows: Iterable[Iterable]) -> str:
    """CSV text of ``header`` and ``rows``, every cell through ``safe_cell``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([safe_cell(cell) for cell in header])
    writer.writerows([safe_cell(cell) for cell in row] for row in rows)
    return buffer.getvalue()
