"""``load_dataset``: any supported layout (folder tree, split folders, labels table, NumPy arrays,
a built-in set) to a ``Dataset`` with its train / val / test splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_transfer.base import log
from keras_transfer.base.errors import DatasetError
from keras_transfer.base.paths import NPZ_ERRORS
from keras_transfer.data.dataset import BUILTIN_DATASETS, Dataset, Split, pick_per_class, stratified_split
from keras_transfer.data.folders import load_folder_tree
from keras_transfer.data.images import check_image
from keras_transfer.data.labels_table import load_labels_table
from keras_transfer.data.layout import parse_splits
from keras_transfer.data.multilabel import merge_copies
from keras_transfer.data.names import load_named_files
from keras_transfer.data.skipped import summarise

DEMO_FLOWERS = Path(__file__).parent / "demo" / "flowers"  # installed with the package (package-data)
SKIPPED_LIST = "dataset.json of the run (train) and audit.json (audit --out)"


def load_dataset(source: str | Path | None = None, *, val_fraction: float = 0.2,
                 test_fraction: float = 0.0, seed: int = 0, max_per_class: int | None = None,
                 labels: str | Path | None = None, splits: str | None = None,
                 labels_from_name: str | None = None, multi_label: bool = False) -> Dataset:
    """Loads a dataset from a folder, a NumPy folder/file, or a built-in name.

    Args:
        source: A folder with one sub-folder per class; a folder with ``train/`` (+ ``val/``,
            ``test/``) each holding class folders; a folder with ``images.npy`` + ``labels.npy``
            (or a ``.npz`` with those keys); ``"flowers"`` / None for the bundled demo photos
            (240 flower photos, 5 classes, CC BY 2.0: ``data/demo/flowers/LICENSE.txt``), or
            ``"digits"`` for scikit-learn's 8x8 digits (a folder named like a built-in: ``./flowers``).
        val_fraction: Share of train cut off for validation when there is no val split.
        test_fraction: Share cut off for a test split when there is none (0 = no test split).
        seed: Seed of the stratified splits.
        max_per_class: Keep at most this many images of each class in every split found on
            disk (before val/test are cut from train), e.g. 100 for "100 images per class":
            picked in a seeded random order and only then checked (class folders), an
            unreadable one replaced by the next in that order.
        labels: A CSV/TSV table of file name (or id) and class, for a ``source`` folder of images
            that are not sorted into class folders (Kaggle style); see ``data/labels_table.py``.
        splits: Which folder is which split, e.g. ``"train=seg_train,test=seg_test"``, for
            split folders under unusual names or two folders claiming one split.
        labels_from_name: A regular expression whose first group, found in a file's name, is its
            class (or ``"prefix"``: the name before its last underscore), for a ``source`` folder
            of unsorted images (the Oxford-IIIT Pet layout); see ``data/names.py``.
        multi_label: Class folders where an image lying in several of them (the same bytes)
            carries each of those labels; see ``data/multilabel.merge_copies``.

    Example:
        >>> ds = load_dataset("digits")
        >>> ds.class_names[:3], len(ds.train) > len(ds.val)
        (['0', '1', '2'], True)
    """
    for name, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= fraction < 1:
            raise DatasetError(f"{name} out of range", "a number in [0, 1)", repr(fraction))
    chosen = parse_splits(splits)
    if labels is not None and labels_from_name is not None:
        raise DatasetError("--labels and --labels-from-name both say where the classes are", "one of them")
    if max_per_class is not None and max_per_class < 1:
        raise DatasetError("max_per_class out of range", "a positive number of images", repr(max_per_class))
    # class folders with --max-per-class: listed unopened, only the picked files are checked
    lazy = max_per_class is not None and labels is None and labels_from_name is None and not multi_label
    if labels_from_name is not None:
        dataset = load_named_files(source, labels_from_name)
    else:
        dataset = _load_raw(source, chosen, check=not lazy) if labels is None else _load_labelled(source, labels)
    if multi_label and not dataset.multi_label:
        dataset = _label_sets_of_copies(dataset)
    if max_per_class is not None and not _pick(dataset, max_per_class, seed, checked=not lazy):
        dataset = _load_raw(source, chosen)  # a class lost every picked file: check them all, as without picking
        _pick(dataset, max_per_class, seed, checked=True)
    dataset = _complete_splits(dataset, val_fraction, test_fraction, seed)
    _check_dataset(dataset)
    for note in dataset.notes:
        log.warn(note)
    if dataset.skipped:
        log.warn(summarise(dataset.skipped, "inputs", SKIPPED_LIST))
    return dataset


def _pick(dataset: Dataset, limit: int, seed: int, checked: bool) -> bool:
    """Keeps at most ``limit`` images of each class in every split (``pick_per_class``), checking
    the picked files unless ``checked``: an unreadable one is listed in ``skipped`` and replaced by
    the next in the same seeded order. False (``dataset`` unchanged) when a class of the training
    images has no readable file among those looked at."""
    splits, refused = {}, []
    for name, split in dataset.splits.items():
        refuse = None if checked or split.is_array else (lambda i, items=split.items: check_image(items[i]))
        keep, bad = pick_per_class(split.labels, limit, seed, refuse)
        if bad and name in ("all", "train") and len(np.unique(split.labels[keep])) < len(np.unique(split.labels)):
            return False
        splits[name] = split.subset(keep)
        refused += [(str(split.items[i]), reason) for i, reason in bad]
    dataset.splits = splits
    dataset.skipped = dataset.skipped + refused
    return True


def _load_labelled(source, table) -> Dataset:
    if source is None or not Path(source).is_dir():
        raise DatasetError(f"--labels needs the folder of the images as the data path, not {source!r}",
                           "DATA = the folder the table's file names are relative to")
    return load_labels_table(Path(source), Path(table))


def _load_raw(source: str | Path | None, chosen: dict[str, str], check: bool = True) -> Dataset:
    if source is None or str(source) in BUILTIN_DATASETS:
        return _load_digits() if str(source) == "digits" else _load_demo_flowers()
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
    return load_folder_tree(path, chosen, check)


def _npz_member(archive, path: Path, key: str) -> np.ndarray:
    if key not in archive.files:
        raise DatasetError(f"{path} has no array named {key!r}", "arrays 'images' and 'labels'",
                           f"arrays {sorted(archive.files)}")
    return archive[key]


def _load_demo_flowers() -> Dataset:
    """The bundled demo: 240 flower photos (48 per class, at most 192 px), each CC BY 2.0."""
    dataset = load_folder_tree(DEMO_FLOWERS, {})
    dataset.source = "flowers"
    return dataset


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
    if dataset.multi_label:
        _check_labels(dataset)
        return
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


def _check_labels(dataset: Dataset) -> None:
    """Several labels per image: at least two labels to learn; labels that no training image (or
    every one) carries are said, and left out of the figures that cannot be computed for them."""
    train, held_out = dataset.train.labels, dataset.eval_split.labels
    positives = train.sum(axis=0)
    if int((positives > 0).sum()) < 2:
        raise DatasetError(f"{dataset.source} has fewer than two labels on its training images",
                           "at least two labels to tell apart", f"labels {dataset.class_names}")
    for what, names in (("on no training image", positives == 0), ("on every training image", positives == len(train)),
                        ("on no held-out image (its precision / recall are not measured)", held_out.sum(axis=0) == 0)):
        if names.any():
            dataset.notes.append(f"label(s) {what}: {', '.join(np.array(dataset.class_names)[names])}")


def _label_sets_of_copies(dataset: Dataset) -> Dataset:
    """``--multi-label`` on class folders: copies (the same bytes) in several class folders of a
    split merge into one image carrying each label (copies across splits are the audit's leakage)."""
    merged = 0
    for name, split in list(dataset.splits.items()):
        if split.is_array:
            raise DatasetError("--multi-label reads copies of files in class folders", "a folder of class folders",
                               f"arrays ({dataset.source})")
        items, y, copies = merge_copies(split.items, split.labels, len(dataset.class_names))
        dataset.splits[name] = Split(split.name, items, y)
        merged += copies
    dataset.notes.append(f"--multi-label: {merged} copies of images in other class folders merged into label sets")
    return dataset
