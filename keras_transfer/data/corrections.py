"""``train --corrections FILE``: a table of fixes to a dataset's labels, kept outside the data folder.

The table is a CSV with the columns ``path`` (the image's path relative to the data folder,
``/``-separated), ``action`` (``relabel``, ``exclude``, ``add`` or ``label``) and ``label`` (the new
class of a relabel, empty for an exclusion). ``add`` rows name an image *outside* the data folder by
its absolute path and the class it joins (a new class, or an existing one): the studio's "add a
class" references images without copying them into the data folder; a seeded share of each class's
added images joins the held-out split. ``label`` rows are the same but join the training images
only: images labelled from the studio's inbox, so the held-out split stays the same images while
a user labels (the learning curve's points compare). One row per image: when an
image appears more than once the last row wins, so a tool may append fixes. The studio writes it
(``studio/workspace.py``); ``train --corrections`` reads it.

Fixes apply *after* the splits are cut from the folder labels, so the held-out split holds the
same images with or without corrections (an excluded image leaves it; a relabelled one stays,
with its new label), and a relabel never moves an image between splits.

Example:
    >>> import tempfile
    >>> table = Path(tempfile.mkdtemp()) / "corrections.csv"
    >>> write_corrections(table, {"ants/1.jpg": Correction("ants/1.jpg", "relabel", "bees")})
    >>> read_corrections(table)["ants/1.jpg"].label
    'bees'
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from keras_transfer.base import log
from keras_transfer.base.csv_cells import FORMULA_STARTS, csv_text
from keras_transfer.base.errors import DatasetError
from keras_transfer.base.paths import atomic_file
from keras_transfer.data.dataset import Dataset, Split, stratified_split

ACTIONS = ("relabel", "exclude", "add", "label")
ADDED = ("add", "label")  # an image outside the data folder, named by its absolute path
COLUMNS = ("path", "action", "label")


@dataclass(frozen=True)
class Correction:
    """One fix: ``path`` relative to the data folder (absolute for added images), ``action`` (``ACTIONS``),
    ``label`` (the class, but for an exclusion)."""

    path: str
    action: str
    label: str | None = None

    @property
    def added(self) -> bool:
        """An image from outside the data folder (``add`` or ``label``)."""
        return self.action in ADDED


def added_id(label: str, path: str | Path) -> str:
    """The id an added image has beside the folder's ``<class>/<file>`` ids: its class and file name."""
    return f"{label}/{Path(path).name}"


def _cell(text: str | None) -> str:
    """A cell as written: ``csv_text`` puts a ``'`` before a cell that would start a formula."""
    text = (text or "").strip()
    return text[1:] if len(text) > 1 and text[0] == "'" and text[1] in FORMULA_STARTS else text


def _bad(path: Path, line: int, what: str, expected: str, received: str) -> DatasetError:
    return DatasetError(f"corrections table {path}, line {line}: {what}", expected, received,
                        hint="fix or delete that row (the studio writes this table)")


def read_corrections(path: str | Path) -> dict[str, Correction]:
    """The fixes of a corrections table by image path (the last row of an image wins).

    Raises:
        DatasetError: The file cannot be read, lacks the columns, or a row is malformed (its
            line number, what it holds and what was expected are said).
    """
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"cannot read the corrections table {path}", "a UTF-8 CSV file with columns "
                           + ", ".join(COLUMNS), f"{type(error).__name__}: {error}") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [_cell(name) for name in (reader.fieldnames or [])]
    if header[:2] != list(COLUMNS[:2]) or (len(header) > 2 and header[2] != COLUMNS[2]):
        raise DatasetError(f"corrections table {path} has the wrong columns", ", ".join(COLUMNS),
                           ", ".join(header) or "an empty file")
    table: dict[str, Correction] = {}
    for number, row in enumerate(reader, start=2):
        fix = _row(path, number, [_cell(row.get(name)) for name in reader.fieldnames[:3]] + [""] * 3)
        table[fix.path] = fix
    return table


def _row(path: Path, line: int, cells: list[str]) -> Correction:
    image, action, label = cells[:3]
    if not image:
        raise _bad(path, line, "no image path", "a path relative to the data folder, e.g. roses/123.jpg", "empty")
    if action not in ACTIONS:
        raise _bad(path, line, "unknown action", " or ".join(ACTIONS), repr(action))
    if action != "exclude" and not label:
        raise _bad(path, line, f"{action} without a label", "the class in the label column", "empty")
    if action in ADDED:
        if not Path(image).is_absolute():
            raise _bad(path, line, "an added image must be named by its absolute path", "/path/to/image.jpg", image)
        return Correction(image, action, label)
    pure = PurePosixPath(image.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts:
        raise _bad(path, line, "the image path leaves the data folder", "a path relative to the data folder", image)
    return Correction(str(pure), action, label if action == "relabel" else None)


def write_corrections(path: str | Path, table: dict[str, Correction]) -> Path:
    """Writes the table atomically, one row per image, sorted by path."""
    rows = [(fix.path, fix.action, fix.label or "") for _, fix in sorted(table.items())]
    text = csv_text(list(COLUMNS), rows)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_file(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def relative_id(item: str | Path, root: Path) -> str | None:
    """The image's id: its path relative to ``root`` (absolute), ``/``-separated (None when it lies outside)."""
    text, prefix = str(item), str(root).rstrip(os.sep) + os.sep
    if text.startswith(prefix) and ".." not in text[len(prefix):].split(os.sep):  # the common case, no pathlib
        return text[len(prefix):].replace(os.sep, "/")
    try:
        return Path(item).absolute().relative_to(root).as_posix()
    except ValueError:
        return None


def apply_corrections(dataset: Dataset, table_path: str | Path, data: str | Path | None = None,
                      held_out_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """``dataset`` with the table's fixes: relabelled images take their new class (in the split
    they are in), excluded ones are left out and listed in ``dataset.notes`` (dataset.json), added images join
    their class (new classes after the folder's, so the old class indices stay).

    Args:
        dataset: A folder dataset (its splits already cut).
        table_path: The corrections table.
        data: The folder the table's paths are relative to (default: ``dataset.source``).
        held_out_fraction: Share of each added class's images that joins the held-out split
            (stratified, seeded); the rest join train.
        seed: Seed of that cut.

    Raises:
        DatasetError: Array datasets or several labels per image; a relabel to a class neither
            the data folder nor an added image has (adding a class is its own action); a path
            no image has.
    """
    table = read_corrections(table_path)
    if dataset.multi_label or any(split.is_array for split in dataset.splits.values()):
        raise DatasetError("--corrections fixes the labels of image files", "a folder of class folders",
                           f"{dataset.source} ({'several labels per image' if dataset.multi_label else 'arrays'})")
    root = Path(data or dataset.source).absolute()
    if not root.is_dir():
        raise DatasetError("--corrections fixes images of a data folder", "DATA = a folder of class folders",
                           str(data or dataset.source))
    added = [fix for fix in table.values() if fix.added]
    names = [*dataset.class_names, *sorted({fix.label for fix in added} - set(dataset.class_names))]
    unknown = sorted({fix.label for fix in table.values() if fix.action == "relabel"} - set(names))
    if unknown:
        raise DatasetError(f"corrections table {table_path} relabels images to class(es) the data has no folder "
                           f"for: {', '.join(unknown)}", "one of " + ", ".join(names), ", ".join(unknown),
                           hint="adding a class is its own action (the studio's 'add a class')")
    seen, relabelled, excluded, splits = set(), 0, [], {}
    for name, split in dataset.splits.items():
        labels, keep = split.labels.copy(), np.ones(len(split), bool)
        for i, image in enumerate(relative_id(item, root) for item in split.items):
            fix = table.get(image)
            if fix is None:
                continue
            seen.add(image)
            if fix.action == "exclude":
                keep[i] = False
                excluded.append(image)
            else:
                relabelled += int(labels[i] != names.index(fix.label))
                labels[i] = names.index(fix.label)
        splits[name] = Split(split.name, split.items, labels).subset(np.flatnonzero(keep))
    missing = sorted(f for f in set(table) - seen if not (root / f).is_file())  # (a capped or skipped file: no fix)
    if missing:
        raise DatasetError(f"corrections table {table_path} names {len(missing)} image(s) not in {root}",
                           "paths of images of the data folder, relative to it (or absolute for added ones)",
                           ", ".join(missing[:5]), hint="a file that was moved or deleted: remove its row")
    dataset.class_names, dataset.splits = names, _with_added(splits, added, names, held_out_fraction, seed)
    dataset.notes.append(f"--corrections {table_path}: {relabelled} image(s) relabelled, {len(excluded)} excluded, "
                         f"{len(added)} added")
    log.info(dataset.notes[-1])
    if excluded:
        dataset.notes.append(f"excluded by --corrections: {', '.join(sorted(excluded))}")
    return dataset


def added_split(added: list[Correction], held_out_fraction: float, seed: int) -> list[tuple[Path, str, bool]]:
    """(file, class, held out?) of every added image, class by class: of a class's ``add`` rows (sorted by
    path) a seeded cut of ``held_out_fraction`` is held out; its ``label`` rows all train."""
    rows = []
    for label in sorted({fix.label for fix in added}):
        paths = sorted(fix.path for fix in added if fix.label == label and fix.action == "add")
        train, test = stratified_split(np.zeros(len(paths), np.int64), held_out_fraction, seed)
        labelled = sorted(fix.path for fix in added if fix.label == label and fix.action == "label")
        rows += [(Path(paths[i]), label, False) for i in train] + [(Path(path), label, False) for path in labelled]
        rows += [(Path(paths[i]), label, True) for i in test]
    return rows


def _with_added(splits: dict[str, Split], added: list[Correction], names: list[str], fraction: float,
                seed: int) -> dict[str, Split]:
    """The splits with the added images, held out or training as ``added_split`` cuts them."""
    held_out = "test" if "test" in splits else "val"
    extra: dict[str, list[tuple[Path, int]]] = {"train": [], held_out: []}
    for path, label, held in added_split(added, fraction, seed):
        extra[held_out if held else "train"].append((path, names.index(label)))
    for name, more in extra.items():
        if more:
            split = splits[name]
            splits[name] = Split(split.name, [*split.items, *(p for p, _ in more)],
                                 np.concatenate([split.labels, np.array([y for _, y in more], np.int64)]))
    for fix in added:
        if not Path(fix.path).is_file():
            raise DatasetError(f"an added image is missing: {fix.path}", "the file the studio's 'add a class' named",
                               "no such file", hint="remove its row from the corrections table")
    return splits
