"""What the loaders leave out (``Dataset.skipped``), counted by what it is.

Every (place, reason) pair is one input left out: a file, a folder, or a row of a labels table.
``kind_of`` names what a reason is about, so that counts say what they count ("rows of the
labels table without an image" are not "damaged files"), and ``summarise`` turns a long list
into a few lines for a terminal: a count per kind, the first few, and where the full list is.
"""

from __future__ import annotations

from collections import Counter

from keras_transfer.data.images import NOT_REGULAR, TOO_LARGE

SHOWN = 5  # entries listed on the terminal; the rest are counted

# (kind, what one count is, test of the reason), the first test that matches wins
_KINDS = (
    ("special_file", "special files (FIFO, device, socket, folder) never opened", lambda r: r.startswith(NOT_REGULAR)),
    ("too_large", "files too large to read", lambda r: r.startswith(TOO_LARGE)),
    ("not_an_image", "files without an image extension", lambda r: r.startswith("not an image file")),
    ("outside_classes", "images outside the class or split folders", lambda r: r.startswith("an image beside")),
    ("link_or_folder", "broken links and unreadable or repeated folders",
     lambda r: r.startswith(("a broken symbolic link", "a symbolic link to a folder", "cannot read the folder"))),
    ("row_without_image", "rows of the labels table without an image", lambda r: " names no image in " in r),
    ("row_ambiguous", "rows of the labels table matching several images", lambda r: "give the path relative" in r),
    ("row_without_class", "rows of the labels table without a class", lambda r: r == "no class in the row"),
    ("row_repeated", "rows of the labels table naming an image again",
     lambda r: " is listed twice" in r or " is listed again " in r),
    ("image_without_row", "images no row of the labels table names", lambda r: r.startswith("no row of ")),
    ("undecodable", "damaged image files (undecodable)", lambda r: True),
)
NOUNS = {kind: noun for kind, noun, _ in _KINDS}
FILE_KINDS = frozenset({"special_file", "too_large", "not_an_image", "outside_classes", "undecodable"})


def kind_of(reason: str) -> str:
    """What a skip reason is about: ``special_file``, ``row_without_image``, ``undecodable`` ..."""
    return next(kind for kind, _, test in _KINDS if test(reason))


def counts(skipped: list[tuple[str, str]]) -> dict[str, int]:
    """Entries per kind, each kind named by what it counts, largest first."""
    found = Counter(kind_of(reason) for _, reason in skipped)
    return {NOUNS[kind]: n for kind, n in found.most_common()}


def summarise(skipped: list[tuple[str, str]], what: str, where: str, shown: int = SHOWN) -> str:
    """A terminal's summary of ``skipped``: one count per kind, the first ``shown`` entries, where the rest are.

    Example:
        >>> print(summarise([("t.csv:2", "'a' names no image in data")], "inputs", "dataset.json"))
        1 inputs left out: 1 rows of the labels table without an image
          t.csv:2: 'a' names no image in data
    """
    parts = ", ".join(f"{n} {noun}" for noun, n in counts(skipped).items())
    lines = [f"{len(skipped)} {what} left out: {parts}", *(f"  {p}: {r}" for p, r in skipped[:shown])]
    if len(skipped) > shown:
        lines.append(f"  ... and {len(skipped) - shown} more, every one listed in {where}")
    return "\n".join(lines)
