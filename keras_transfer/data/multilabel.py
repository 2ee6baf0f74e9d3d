"""Several labels per image: label cells, indicator matrices, and splits that keep every label's share.

A multi-label split's ``labels`` is an (N, L) 0/1 uint8 matrix (one column per label) instead of
(N,) class indices. Splits and folds are cut by iterative stratification (Sechidis, Tsoumakas
and Vlahavas, 2011): the label with the fewest images left is dealt first, each of its images to
the part that still wants the most of that label. Written here because the one library that
implements it (scikit-multilearn) is unmaintained and pulls in old pinned dependencies; the
algorithm is a dozen lines.
"""

from __future__ import annotations

import re

import numpy as np

SEPARATORS = re.compile(r"\s*[,;|]\s*")


def label_cell(cell: str, spaces: bool = False) -> list[str]:
    """The labels of one table cell: ``"sea, sunset"``, ``"sea;sunset"``, ``"sea|sunset"`` (and
    ``"sea sunset"`` when ``spaces``), without empties or repeats, in order."""
    parts = re.split(r"[\s,;|]+", cell.strip()) if spaces else SEPARATORS.split(cell.strip())
    return list(dict.fromkeys(p.strip() for p in parts if p.strip()))


def is_multi_label_cell(cell: str) -> bool:
    return len(label_cell(cell)) > 1


def indicator(label_sets: list[list[str]], names: list[str]) -> np.ndarray:
    """(N, L) uint8: row i has a 1 in the column of each of image i's labels."""
    column = {name: i for i, name in enumerate(names)}
    out = np.zeros((len(label_sets), len(names)), np.uint8)
    for row, labels in enumerate(label_sets):
        out[row, [column[label] for label in labels]] = 1
    return out


def iterative_stratify(y: np.ndarray, proportions: list[float], seed: int) -> np.ndarray:
    """The part (0 .. len(proportions) - 1) of each row of a 0/1 matrix ``y`` (N, L), each part
    receiving about its proportion of the images and of every label's positives."""
    rng = np.random.default_rng(seed)
    y = np.asarray(y, bool)
    share = np.asarray(proportions, float) / np.sum(proportions)
    wanted = share * len(y)  # images each part still wants
    wanted_label = np.outer(share, y.sum(axis=0)).astype(float)  # (parts, L) positives still wanted
    part = np.full(len(y), -1, np.int64)
    order = rng.permutation(len(y))
    left = np.ones(len(y), bool)
    while left.any():
        counts = y[left].sum(axis=0)
        rows = order[left[order]]
        if counts.max() > 0:
            label = int(np.argmin(np.where(counts > 0, counts, np.iinfo(np.int64).max)))
            rows = rows[y[rows, label]]
        else:
            label = None  # images without any label: dealt by size alone
        for row in rows:
            need = wanted_label[:, label] if label is not None else wanted
            best = np.flatnonzero(need == need.max())
            if len(best) > 1:
                best = best[wanted[best] == wanted[best].max()]
            chosen = int(rng.choice(best))
            part[row], left[row] = chosen, False
            wanted[chosen] -= 1
            wanted_label[chosen] -= y[row]
    return part


def label_strata(y: np.ndarray) -> np.ndarray:
    """One stratum per distinct label set (for helpers that need 1-D classes, e.g. sampling)."""
    return np.unique(np.asarray(y), axis=0, return_inverse=True)[1].reshape(-1)


def merge_copies(items: list, labels: np.ndarray, n_classes: int) -> tuple[list, np.ndarray, int]:
    """Files of class folders -> (distinct files, their label sets (M, L), copies merged): an image
    lying in several class folders (the same bytes) becomes one image carrying each of those labels."""
    import hashlib

    from keras_transfer.data.images import open_regular

    first: dict[str, int] = {}
    kept, sets = [], []
    for path, label in zip(items, labels):
        with open_regular(path) as handle:
            key = hashlib.blake2b(handle.read(), digest_size=16).hexdigest()
        if key in first:
            sets[first[key]].add(int(label))
        else:
            first[key] = len(kept)
            kept.append(path)
            sets.append({int(label)})
    y = np.zeros((len(kept), n_classes), np.uint8)
    for row, chosen in enumerate(sets):
        y[row, sorted(chosen)] = 1
    return kept, y, len(items) - len(kept)
