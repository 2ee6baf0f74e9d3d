"""Datasets: folder-per-class trees, train/val/test split folders, NumPy arrays, built-ins.

Every loader returns a :class:`Dataset` with ``train`` and ``val`` splits (``test`` when
present or requested); missing splits are cut by a deterministic stratified split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keras_transfer.data.images import array_to_rgb, read_image
from keras_transfer.data.multilabel import iterative_stratify, label_strata
from keras_transfer.base.errors import DatasetError

BUILTIN_DATASETS = ("flowers", "digits")  # by name; the first is the default (data/load.py)
DEFAULT_DATASET = BUILTIN_DATASETS[0]


@dataclass
class Split:
    """One split: image sources (file paths or an (N, H, W[, C]) array) and integer labels."""

    name: str
    items: list[Path] | np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def is_array(self) -> bool:
        return isinstance(self.items, np.ndarray)

    def image(self, index: int, min_size: int | None = None) -> np.ndarray:
        """The image at ``index`` as RGB uint8 (H, W, 3); see ``read_image`` for ``min_size``."""
        if self.is_array:
            return array_to_rgb(self.items[index])
        return read_image(self.items[index], min_size)

    def ids(self) -> list[str]:
        """A printable identifier for each image: its path, or ``<split>[i]`` for arrays."""
        if self.is_array:
            return [f"{self.name}[{i}]" for i in range(len(self))]
        return [str(p) for p in self.items]

    def subset(self, indices: np.ndarray, name: str | None = None) -> Split:
        items = self.items[indices] if self.is_array else [self.items[i] for i in indices]
        return Split(name or self.name, items, self.labels[indices])


@dataclass
class Dataset:
    """Class names plus named splits; ``skipped`` lists (file, reason) left out."""

    class_names: list[str]
    splits: dict[str, Split]
    source: str
    skipped: list[tuple[str, str]] = field(default_factory=list)
    cut_from: Split | None = None  # the training split a selection split was cut from
    layout: dict[str, str] = field(default_factory=dict)  # split -> where its images came from
    notes: list[str] = field(default_factory=list)  # what was read differently from how it lies on disk

    def without_selection_split(self) -> Dataset:
        """The dataset before ``with_selection_split`` (itself if it has none)."""
        if self.cut_from is None:
            return self
        return Dataset(self.class_names, {"train": self.cut_from, "val": self.splits["test"]}, self.source,
                       self.skipped, layout={"train": self.layout["train"], "val": self.layout["test"]},
                       notes=self.notes)

    @property
    def multi_label(self) -> bool:
        """Whether an image may carry several labels (labels are (N, L) 0/1 matrices)."""
        return any(split.labels.ndim == 2 for split in self.splits.values())

    @property
    def train(self) -> Split:
        return self.splits["train"]

    @property
    def val(self) -> Split:
        return self.splits["val"]

    @property
    def eval_split(self) -> Split:
        """The held-out split used for final metrics: test if present, else val."""
        return self.splits.get("test") or self.splits["val"]

    def with_selection_split(self, fraction: float, seed: int) -> Dataset:
        """The dataset as a strategy that makes choices on a validation split must see it.

        With a test split nothing changes. Without one, the validation split becomes the
        held-out one (evaluated, never looked at) and a ``selection`` split is cut from the
        training images (stratified, ``fraction`` of them) for early stopping and comparisons.
        """
        if "test" in self.splits:
            return self
        kept, taken = stratified_split(self.train.labels, fraction, seed + 1)
        if not len(taken):
            raise DatasetError("too few training images to cut a selection split from",
                               "at least 2 training images in some class (this strategy picks epochs and "
                               "settings on images cut from train)", f"{len(self.train)} training images",
                               hint="add images, or use --strategy bottleneck (it needs no selection split)")
        splits = {"train": self.train.subset(kept), "val": self.train.subset(taken, "selection"), "test": self.val}
        return Dataset(self.class_names, splits, self.source, self.skipped, cut_from=self.train,
                       layout={"train": self.layout.get("train", self.source), "test": self.layout.get("val", ""),
                               "val": f"selection split, cut from train ({fraction:.0%})"}, notes=self.notes)

    def summary(self) -> dict:
        return {"source": self.source, "classes": self.class_names, "multi_label": self.multi_label,
                "splits": {name: len(split) for name, split in self.splits.items()},
                "layout": self.layout, "notes": self.notes, "skipped": len(self.skipped)}


def stratified_folds(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold number of each sample: every class dealt round-robin over the folds, in a seeded order
    (several labels per image, ``y`` (N, L): iterative stratification)."""
    if np.ndim(y) == 2:
        return iterative_stratify(y, [1.0] * folds, seed)
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), np.int64)
    offset = 0
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        fold[members] = (np.arange(len(members)) + offset) % folds
        offset += len(members)  # so small classes do not all start in fold 0
    return fold


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministically splits indices per class; returns (kept, taken) sorted index arrays.

    Each class with at least 2 images gives at least one image to the taken side. Several labels
    per image (``labels`` (N, L)): iterative stratification over the labels.
    """
    if np.ndim(labels) == 2:
        part = iterative_stratify(labels, [1 - fraction, fraction], seed)
        return np.flatnonzero(part == 0), np.flatnonzero(part == 1)
    rng = np.random.default_rng(seed)
    kept, taken = [], []
    for label in np.unique(labels):
        indices = np.flatnonzero(labels == label)
        indices = indices[rng.permutation(len(indices))]
        count = int(round(len(indices) * fraction))
        count = min(max(count, 1 if len(indices) >= 2 else 0), len(indices) - 1)
        taken.append(indices[:count])
        kept.append(indices[count:])
    none = np.zeros(0, np.int64)  # no labels at all: two empty sides
    return np.sort(np.concatenate([none, *kept])), np.sort(np.concatenate([none, *taken]))


def cap_per_class(labels: np.ndarray, limit: int, seed: int = 0) -> np.ndarray:
    """Sorted indices keeping at most ``limit`` randomly chosen items of each class (of each label
    set, for several labels per image)."""
    return pick_per_class(labels, limit, seed)[0]


def pick_per_class(labels: np.ndarray, limit: int, seed: int = 0,
                   refuse: Callable[[int], str | None] | None = None) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """At most ``limit`` items of each class, checked only once picked: (sorted indices, refused).

    Each class's items are visited in one seeded random order; ``refuse(i)`` (why item ``i``
    cannot be used, or None) is asked in that order until ``limit`` pass, so only those and the
    ones refused on the way are checked, and a refused item is replaced by the next in the order.
    Where nothing is refused, these are the items ``cap_per_class`` keeps.

    Returns:
        The kept indices, sorted, and (index, reason) of every item refused.
    """
    labels = label_strata(labels) if np.ndim(labels) == 2 else labels
    rng = np.random.default_rng(seed)
    keep, refused = [], []
    for label in np.unique(labels):
        order = rng.permutation(np.flatnonzero(labels == label))
        if refuse is None:
            keep.append(order[:limit])
            continue
        taken: list[int] = []
        for index in order:
            if len(taken) == limit:
                break
            if (reason := refuse(int(index))) is None:
                taken.append(int(index))
            else:
                refused.append((int(index), reason))
        keep.append(np.asarray(taken, np.int64))
    return (np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)), refused


def stratified_sample(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """About ``n`` indices spread evenly over the classes (all of a class when it has fewer),
    sorted by (class, index). Deterministic for a seed.

    Example:
        >>> labels = np.array([0, 0, 0, 1, 1, 2])
        >>> labels[stratified_sample(labels, 4)].tolist()
        [0, 0, 1, 2]
    """
    labels = label_strata(labels) if np.ndim(labels) == 2 else labels
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    chosen = []
    for rank, label in enumerate(classes):
        members = np.flatnonzero(labels == label)
        quota = n // len(classes) + (1 if rank < n % len(classes) else 0)
        chosen.append(np.sort(rng.choice(members, min(quota, len(members)), replace=False)))
    return np.concatenate(chosen) if chosen else np.zeros(0, np.int64)
