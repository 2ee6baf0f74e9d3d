"""Labels kept in a table, as Kaggle-style datasets ship them: ``--labels train.csv``.

The table has a column naming each image (a path relative to the image folder, a file name,
or an id that is the file name without its extension) and a column with its class; an
optional ``split`` column (train / val / test under any usual name) assigns splits. The
delimiter and a header row are detected. Problems are reported, never fatal: rows naming no
image, rows without a class, the same image listed twice (with conflicting classes it is left
out), images of the folder that no row names.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np

from keras_transfer.data.dataset import Dataset, Split
from keras_transfer.data.images import check_image, is_image_file, read_text
from keras_transfer.data.layout import split_role, walk_files
from keras_transfer.data.multilabel import indicator, is_multi_label_cell, label_cell
from keras_transfer.base.errors import DatasetError

FILE_COLUMNS = ("file", "filename", "file_name", "fname", "image", "image_id", "image_name", "img", "id",
                "path", "filepath", "name")
CLASS_COLUMNS = ("label", "class", "class_name", "category", "target", "breed", "species", "labels", "y")
SPLIT_COLUMNS = ("split", "subset", "set", "partition")


class _Images:
    """The image files under a folder, found by relative path, file name or stem (the id)."""

    def __init__(self, folder: Path):
        files, self.problems = walk_files(folder)
        self.files = [f for f in files if is_image_file(f)]
        self.index: dict[str, list[Path]] = {}
        for file in self.files:
            for key in {file.relative_to(folder).as_posix(), file.name, file.stem}:
                self.index.setdefault(key.casefold(), []).append(file)

    def find(self, value: str) -> list[Path]:
        value = value.strip().replace("\\", "/").removeprefix("./")
        for key in (value, value.rsplit("/", 1)[-1]):
            if found := self.index.get(key.casefold()):
                return found
        return []


def _read_rows(table: Path) -> list[list[str]]:
    try:
        text = read_text(table)
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"cannot read the labels table {table}", "a UTF-8 CSV or TSV file", str(error)) from None
    try:
        dialect = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows = [[cell.strip() for cell in row] for row in csv.reader(text.splitlines(), dialect)]
    return [row for row in rows if any(row)]


def _columns(rows: list[list[str]], images: _Images) -> tuple[bool, int, int, int | None]:
    """(has header, file column, class column, split column or None)."""
    width = max(len(row) for row in rows)
    head = [cell.casefold().replace(" ", "_") for cell in rows[0]] + [""] * width
    body = rows[1:51] or rows[:1]
    hits = [sum(bool(images.find(row[c])) for row in body if len(row) > c) for c in range(width)]
    file_col = max(range(width), key=lambda c: (hits[c], head[c] in FILE_COLUMNS))
    has_header = not images.find(rows[0][file_col]) and (hits[file_col] > 0 or any(h in FILE_COLUMNS for h in head))
    named = {h: c for c, h in enumerate(head[:width])} if has_header else {}
    class_col = next((named[h] for h in CLASS_COLUMNS if h in named), None)
    if class_col is None:
        class_col = next((c for c in range(width) if c != file_col), None)
    if class_col is None or hits[file_col] == 0:
        raise DatasetError("the labels table names no image of the folder" if class_col is not None
                           else "the labels table has one column",
                           "a column of image file names or ids and a column of classes",
                           f"first row {rows[0]}")
    split_col = next((named[h] for h in SPLIT_COLUMNS if h in named), None)
    return has_header, file_col, class_col, split_col


def load_labels_table(folder: Path, table: Path) -> Dataset:
    """A dataset of the images in ``folder`` labelled by the rows of ``table``."""
    if not table.is_file():
        raise DatasetError(f"labels table not found: {table}", "a CSV/TSV file of image names and classes",
                           hint="check the path given to --labels")
    images = _Images(folder)
    rows = _read_rows(table)
    if not rows:
        raise DatasetError(f"the labels table {table} is empty", "a row per image: file name or id, class")
    has_header, file_col, class_col, split_col = _columns(rows, images)
    onehot = _onehot_columns(rows, has_header, file_col, split_col)
    chosen: dict[Path, tuple[str, str]] = {}
    skipped = list(images.problems)
    conflicts: set[Path] = set()
    for number, row in enumerate(rows[1:] if has_header else rows, start=2 if has_header else 1):
        where = f"{table}:{number}"
        cell = row[file_col] if len(row) > file_col else ""
        label = row[class_col] if len(row) > class_col else ""
        if onehot:  # one 0/1 column per label: the row's labels joined (none: an all-negative image)
            label = ";".join(name for name, c in onehot.items() if len(row) > c and row[c] == "1") or ";"
        matches = images.find(cell) if cell else []
        if len(matches) != 1 or not label:
            reason = ("no class in the row" if matches and not label else
                      f"{cell!r} matches {len(matches)} images: give the path relative to {folder}"
                      if matches else f"{cell!r} names no image in {folder}")
            skipped.append((where, reason))
            continue
        split = split_role(row[split_col]) if split_col is not None and len(row) > split_col else None
        file = matches[0]
        if file in chosen and chosen[file][0] != label:
            conflicts.add(file)
            skipped.append((where, f"{file.name} is listed again with another class ({chosen[file][0]} / "
                                   f"{label}): left out"))
        elif file in chosen:
            skipped.append((where, f"{file.name} is listed twice: kept once"))
        else:
            chosen[file] = (label, split or "all")
    unlisted = [f for f in images.files if f not in chosen]
    skipped += [(str(f), f"no row of {table.name} names it: left out") for f in unlisted]
    valid = {}
    for file, value in chosen.items():
        if file in conflicts:
            continue
        if (reason := check_image(file)) is None:
            valid[file] = value
        else:
            skipped.append((str(file), reason))
    return _dataset(folder, table, valid, skipped, multi_label=bool(onehot))


def _onehot_columns(rows: list[list[str]], has_header: bool, file_col: int, split_col: int | None) -> dict[str, int]:
    """{label: column} when every column but the file and split ones holds only 0 and 1 (and there
    are two or more): the one-hot layout of a multi-label table; else {}."""
    if not has_header:
        return {}
    body = rows[1:]
    columns = [c for c in range(len(rows[0])) if c not in (file_col, split_col)]
    binary = [c for c in columns if all(len(row) > c and row[c] in ("0", "1") for row in body)]
    return {rows[0][c]: c for c in binary} if len(binary) == len(columns) >= 2 else {}


def _dataset(folder: Path, table: Path, valid: dict[Path, tuple[str, str]], skipped,
             multi_label: bool = False) -> Dataset:
    """The dataset of the chosen files; several labels per image when a cell lists several
    (``sea, sunset``) or the table is one-hot."""
    multi_label = multi_label or any(is_multi_label_cell(label) for label, _ in valid.values())
    sets = {file: label_cell(label) if multi_label else [label] for file, (label, _) in valid.items()}
    names = sorted({name for labels in sets.values() for name in labels})
    counts = Counter(split for _, split in valid.values())
    roles = sorted(set(counts) - {"all"}) if "train" in counts else ["all"]  # unnamed splits train
    splits = {}
    for role in roles:
        files = [f for f, (_, split) in valid.items() if role == "all" or split == role
                 or (role == "train" and split == "all")]
        labels = (indicator([sets[f] for f in files], names) if multi_label
                  else np.array([names.index(valid[f][0]) for f in files], dtype=np.int64))
        splits[role] = Split(role, files, labels)
    dataset = Dataset(names, splits, str(folder), skipped)
    dataset.layout = {role: f"{table} ({'rows' if role == 'all' else role + ' rows'})" for role in roles}
    return dataset
