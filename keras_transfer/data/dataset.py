"""Datasets: folder-per-class trees, train/val/test split folders, NumPy arrays, built-ins.

Every loader returns a :class:`Dataset` with ``train`` and ``val`` splits (``test`` when
present or requested); missing splits are cut by a deterministic stratified split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keras_transfer import log
from keras_transfer.data.images import array_to_rgb, read_image
from keras_transfer.data.layout import parse_splits
from keras_transfer.errors import DatasetError
from keras_transfer.paths import NPZ_ERRORS

BUILTIN_DATASETS = ("digits",)


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
        return {"source": self.source, "classes": self.class_names,
                "splits": {name: len(split) for name, split in self.splits.items()},
                "layout": self.layout, "notes": self.notes, "skipped": len(self.skipped)}


def stratified_folds(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold number of each sample: every class dealt round-robin over the folds, in a seeded order."""
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

    Each class with at least 2 images gives at least one image to the taken side.
    """
    rng = np.random.default_rng(seed)
    kept, taken = [], []
    for label in np.unique(labels):
        indices = np.flatnonzero(labels == label)
        indices = indices[rng.permutation(len(indices))]
        count = int(round(len(indices) * fraction))
        count = min(max(count, 1 if len(indices) >= 2 else 0), len(indices) - 1)
        taken.append(indices[:count])
        kept.append(indices[count:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(taken))


def cap_per_class(labels: np.ndarray, limit: int, seed: int = 0) -> np.ndarray:
    """Sorted indices keeping at most ``limit`` randomly chosen items of each class."""
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(labels == label))[:limit] for label in np.unique(labels)]
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)


def stratified_sample(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """About ``n`` indices spread evenly over the classes (all of a class when it has fewer),
    sorted by (class, index). Deterministic for a seed.

    Example:
        >>> labels = np.array([0, 0, 0, 1, 1, 2])
        >>> labels[stratified_sample(labels, 4)].tolist()
        [0, 0, 1, 2]
    """
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    chosen = []
    for rank, label in enumerate(classes):
        members = np.flatnonzero(labels == label)
        quota = n // len(classes) + (1 if rank < n % len(classes) else 0)
        chosen.append(np.sort(rng.choice(members, min(quota, len(members)), replace=False)))
    return np.concatenate(chosen) if chosen else np.zeros(0, np.int64)


def load_dataset(source: str | Path | None = None, *, val_fraction: float = 0.2,
                 test_fraction: float = 0.0, seed: int = 0, max_per_class: int | None = None,
                 labels: str | Path | None = None, splits: str | None = None) -> Dataset:
    """Loads a dataset from a folder, a NumPy folder/file, or a built-in name.

    Args:
        source: A folder with one sub-folder per class; a folder with ``train/`` (+ ``val/``,
            ``test/``) each holding class folders; a folder with ``images.npy`` + ``labels.npy``
            (or a ``.npz`` with those keys); or ``"digits"`` / None for scikit-learn's digits.
        val_fraction: Share of train cut off for validation when there is no val split.
        test_fraction: Share cut off for a test split when there is none (0 = no test split).
        seed: Seed of the stratified splits.
        max_per_class: Keep at most this many images of each class in every split found on
            disk (before val/test are cut from train), e.g. 100 for "100 images per class".
        labels: A CSV/TSV table of file name (or id) and class, for a ``source`` folder of images
            that are not sorted into class folders (Kaggle style); see ``data/labels_table.py``.
        splits: Which folder is which split, e.g. ``"train=seg_train,test=seg_test"``, for
            split folders under unusual names or two folders claiming one split.

    Example:
        >>> ds = load_dataset("digits")
        >>> ds.class_names[:3], len(ds.train) > len(ds.val)
        (['0', '1', '2'], True)
    """
    for name, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= fraction < 1:
            raise DatasetError(f"{name} out of range", "a number in [0, 1)", repr(fraction))
    chosen = parse_splits(splits)
    dataset = _load_raw(source, chosen) if labels is None else _load_labelled(source, labels)
    if max_per_class is not None:
        if max_per_class < 1:
            raise DatasetError("max_per_class out of range", "a positive number of images", repr(max_per_class))
        dataset.splits = {name: split.subset(cap_per_class(split.labels, max_per_class, seed))
                          for name, split in dataset.splits.items()}
    dataset = _complete_splits(dataset, val_fraction, test_fraction, seed)
    _check_dataset(dataset)
    for note in dataset.notes:
        log.warn(note)
    if dataset.skipped:
        listing = "\n  ".join(f"{path}: {reason}" for path, reason in dataset.skipped)
        log.warn(f"skipped {len(dataset.skipped)} file(s):\n  {listing}")
    return dataset


def _load_labelled(source, table) -> Dataset:
    from keras_transfer.data.labels_table import load_labels_table

    if source is None or not Path(source).is_dir():
        raise DatasetError(f"--labels needs the folder of the images as the data path, not {source!r}",
                           "DATA = the folder the table's file names are relative to")
    return load_labels_table(Path(source), Path(table))


def _load_raw(source: str | Path | None, chosen: dict[str, str]) -> Dataset:
    if source is None or str(source) in BUILTIN_DATASETS:
        return _load_digits()
    path = Path(source).expanduser()
    if not path.exists():
        raise DatasetError(f"dataset not found: {path}",
                           "a folder of class folders, a train/val tree, images.npy + labels.npy, or 'digits'",
                           hint="check the path")
    if path.is_file() and path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                return _arrays_dataset(path, _npz_member(archive, path, "images"), _npz_member(archive, path, "labels"))
        except NPZ_ERRORS as error:
            raise DatasetError(f"cannot read {path}", "a .npz of plain arrays 'images' and 'labels'",
                               f"{type(error).__name__}: {error}") from None
    if path.is_file():
        raise DatasetError(f"{path} is a file, not a dataset folder",
                           "a folder with one sub-folder per class (or a .npz with images and labels)",
                           f"a {path.suffix or 'extension-less'} file")
    if (path / "images.npy").exists() or (path / "labels.npy").exists():
        return _load_numpy_folder(path)
    from keras_transfer.data.folders import load_folder_tree  # it builds on this module's classes

    return load_folder_tree(path, chosen)


def _npz_member(archive, path: Path, key: str) -> np.ndarray:
    if key not in archive.files:
        raise DatasetError(f"{path} has no array named {key!r}", "arrays 'images' and 'labels'",
                           f"arrays {sorted(archive.files)}")
    return archive[key]


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    names = [str(n) for n in digits.target_names]
    return Dataset(names, {"all": Split("all", images, digits.target.astype(np.int64))}, "digits")


def _load_numpy_folder(path: Path) -> Dataset:
    arrays = {}
    for name in ("images", "labels"):
        file = path / f"{name}.npy"
        if not file.exists():
            raise DatasetError(f"{file} is missing", "both images.npy and labels.npy in the folder")
        try:
            arrays[name] = np.load(file, allow_pickle=False)
        except NPZ_ERRORS as error:
            raise DatasetError(f"cannot read {file}", "a plain numeric or string array (no pickled objects)",
                               str(error)) from None
    return _arrays_dataset(path, arrays["images"], arrays["labels"])


def _arrays_dataset(path: Path, images: np.ndarray, labels: np.ndarray) -> Dataset:
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3, 4)):
        raise DatasetError(f"images in {path} have shape {images.shape}",
                           "(N, H, W) grayscale or (N, H, W, C) with C in 1, 3, 4 (channels last)")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DatasetError(f"labels in {path} do not match the images",
                           f"a 1-D array of {len(images)} labels (one per image)",
                           f"shape {labels.shape}")
    if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)):
        raise DatasetError(f"images in {path} have dtype {images.dtype}", "uint8 or float pixels")
    names, encoded = np.unique(labels.astype(str) if labels.dtype.kind in "US" else labels, return_inverse=True)
    return Dataset([str(n) for n in names], {"all": Split("all", images, encoded.astype(np.int64))}, str(path))


def _complete_splits(dataset: Dataset, val_fraction: float, test_fraction: float, seed: int) -> Dataset:
    splits, layout = dict(dataset.splits), dict(dataset.layout)
    base = splits.pop("all") if "all" in splits else splits.pop("train")
    layout["train"] = layout.pop("all", layout.get("train", dataset.source))
    if "test" not in splits and test_fraction > 0:
        keep, take = stratified_split(base.labels, test_fraction, seed)
        splits["test"], base = base.subset(take, "test"), base.subset(keep)
        layout["test"] = f"cut from train ({test_fraction:.0%}, stratified, seed {seed})"
    if "val" not in splits or not len(splits["val"]):
        keep, take = stratified_split(base.labels, val_fraction or 0.2, seed + 1)
        splits["val"], base = base.subset(take, "val"), base.subset(keep)
        layout["val"] = f"cut from train ({val_fraction or 0.2:.0%}, stratified, seed {seed + 1})"
    splits["train"] = Split("train", base.items, base.labels)
    order = {"train": 0, "val": 1, "test": 2}
    dataset.splits = dict(sorted(splits.items(), key=lambda kv: order[kv[0]]))
    dataset.layout = {name: layout[name] for name in dataset.splits}
    return dataset


def _check_dataset(dataset: Dataset) -> None:
    held_out = dataset.eval_split
    if not len(held_out):
        raise DatasetError(f"{dataset.source} leaves no image to test on",
                           "at least 2 images in some class (one to learn from, one held out)",
                           f"{len(dataset.train)} image(s) in all", hint="add images")
    missing = [dataset.class_names[i] for i in np.unique(dataset.train.labels)
               if not np.any(held_out.labels == i)]
    if missing:
        dataset.notes.append(f"class(es) with no held-out image, whose accuracy is not measured: "
                             f"{', '.join(missing)} (a class needs 2 images or more)")
    present = np.unique(dataset.train.labels)
    if len(dataset.class_names) < 2 or len(present) < 2:
        raise DatasetError(f"{dataset.source} has only {len(present)} class with images",
                           "at least two classes to tell apart",
                           f"classes {dataset.class_names}", hint="add a folder per class")
