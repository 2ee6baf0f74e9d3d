"""The URL list: a text file (one URL a line) or a CSV/TSV table with a URL column and optional
label and split columns, detected as ``--labels`` tables are (delimiter, header, column names)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from keras_transfer.base.errors import DatasetError
from keras_transfer.data.images import read_text
from keras_transfer.data.labels_table import CLASS_COLUMNS, SPLIT_COLUMNS
from keras_transfer.data.layout import split_role

URL_COLUMNS = ("url", "urls", "link", "href", "src", "image_url", "img_url", "image", "address", "uri")
SCHEMES = ("http", "https")


@dataclass(frozen=True)
class Item:
    """One row of the list: its line number, URL, class (or None) and split (train / val / test or None)."""

    row: int
    url: str
    label: str | None = None
    split: str | None = None

    @property
    def scheme(self) -> str:
        return self.url.split(":", 1)[0].strip().lower() if ":" in self.url else ""


def _looks_like_url(cell: str) -> bool:
    return "://" in cell or cell.lower().startswith(("data:", "javascript:", "mailto:"))


def _rows(path: Path) -> list[tuple[int, list[str]]]:
    try:
        text = read_text(path)
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"cannot read the URL list {path}", "a UTF-8 text, CSV or TSV file",
                           f"{type(error).__name__}: {error}") from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    first = lines[0][1].strip() if lines else ""
    if path.suffix.lower() == ".txt" or path.suffix.lower() not in (".csv", ".tsv") and _looks_like_url(first):
        return [(n, [line.strip()]) for n, line in lines]
    sample = "\n".join(line for _, line in lines[:50])
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel_tab if path.suffix.lower() == ".tsv" else csv.excel
    return [(n, [cell.strip() for cell in next(csv.reader([line], dialect), [])]) for n, line in lines]


def read_urls(path: str | Path) -> list[Item]:
    """The items of a URL list, in order (blank lines and ``#`` comments skipped).

    Example:
        >>> read_urls("urls.csv")[0]  # doctest: +SKIP
        Item(row=2, url='https://example.org/a.jpg', label='cat', split=None)
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"URL list not found: {path}", "a text file of URLs (one a line), or a CSV/TSV "
                           "with a URL column", hint="check the path given to collect")
    rows = _rows(path)
    if not rows:
        raise DatasetError(f"the URL list {path} is empty", "one URL a line, or a table with a URL column")
    width = max(len(cells) for _, cells in rows)
    head = [cell.casefold().replace(" ", "_") for cell in rows[0][1]] + [""] * width
    body = rows[1:51] or rows[:1]
    hits = [sum(len(cells) > c and _looks_like_url(cells[c]) for _, cells in body) for c in range(width)]
    url_col = max(range(width), key=lambda c: (hits[c], head[c] in URL_COLUMNS))
    has_header = not _looks_like_url(rows[0][1][url_col] if len(rows[0][1]) > url_col else "")
    if hits[url_col] == 0:
        raise DatasetError(f"no URL found in {path}", "a column of http:// or https:// URLs",
                           f"first row {rows[0][1]}")
    named = {h: c for c, h in enumerate(head[:width])} if has_header else {}
    label_col = next((named[h] for h in CLASS_COLUMNS if h in named), None)
    if label_col is None and not has_header and width == 2:
        label_col = 1 - url_col
    split_col = next((named[h] for h in SPLIT_COLUMNS if h in named), None)
    cell = lambda cells, c: cells[c].strip() if c is not None and len(cells) > c else ""  # noqa: E731
    items = []
    for number, cells in rows[1:] if has_header else rows:
        url = cell(cells, url_col)
        if url:
            items.append(Item(number, url, cell(cells, label_col) or None, split_role(cell(cells, split_col)) or None))
    return items
