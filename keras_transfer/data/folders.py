"""Folder-per-class trees, with or without split folders, as people have them on disk.

What is ignored says so: system clutter silently, everything else in ``Dataset.skipped`` or
a note (images beside the class folders, empty class folders, a wrapper folder stepped into).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_transfer.data.dataset import Dataset, Split
from keras_transfer.data.images import check_image, is_image_file
from keras_transfer.data.layout import find_split_folders, split_role, subfolders, walk_files
from keras_transfer.base.errors import DatasetError


def load_folder_tree(root: Path, chosen_splits: dict[str, str], check: bool = True) -> Dataset:
    """A dataset of class folders under ``root``, or under its train/val/test folders.

    ``check=False`` lists the image files without opening them (``--max-per-class`` checks only
    the ones it picks: ``data.load``).
    """
    notes = []
    if not chosen_splits:
        root = _step_into_wrappers(root, notes, top=True)
    splits = find_split_folders(root, chosen_splits)
    if splits and "train" not in splits:
        names = ", ".join(f"{f.name} ({role})" for role, f in splits.items())
        raise DatasetError(f"{root} has split folders {names} but none for training",
                           "a train folder (train, training, train_set, ...) beside them",
                           hint="name it with --splits train=FOLDER, or rename the training folder to train")
    if not splits:
        _refuse_unnamed_splits(root)
        dataset = _class_tree(root, "all", notes, check)
    else:
        dataset = _split_tree(root, splits, notes, check)
        beside = [p.name for p in subfolders(root) if p not in splits.values()]
        if beside:
            notes.append(f"folders beside the split folders of {root} were not read: {', '.join(beside)} "
                         "(name them with --splits to use them)")
    dataset.notes = notes + dataset.notes
    return dataset


def _loose_images(folder: Path) -> list[Path]:
    """Image files lying directly in ``folder`` (in no sub-folder), sorted."""
    return [p for p in sorted(folder.iterdir()) if p.is_file() and is_image_file(p)]


def _refuse_unnamed_splits(root: Path) -> None:
    """Folders that all hold the same class folders (``seg_train/``, ``seg_test/``) are splits by other names."""
    tops = subfolders(root)
    inner = [{p.name for p in subfolders(top)} for top in tops]
    shared = set.intersection(*inner) if len(tops) > 1 else set()
    if len(shared) < 2 or any(_loose_images(top) for top in tops):
        return
    guess = ",".join(f"{role}={top.name}" for top in tops
                     if (role := next((r for r in ("train", "val", "test") if r in top.name.lower()), None)))
    raise DatasetError(f"the folders of {root} ({', '.join(t.name for t in tops)}) each hold the same class "
                       f"folders ({', '.join(sorted(shared)[:5])}): they look like split folders",
                       "split folders named train, val, test (or their usual names), or one folder per class",
                       hint=f"say which is which: --splits {guess or 'train=FOLDER,test=FOLDER'}")


def _step_into_wrappers(folder: Path, notes: list[str], top: bool) -> Path:
    """Steps into a lone sub-folder that holds the real tree (``photos/photos/cats``, zip wrappers)."""
    while True:
        inner = subfolders(folder)
        if len(inner) != 1 or not subfolders(inner[0]) or (top and split_role(inner[0].name)):
            return folder
        if _loose_images(folder):
            return folder
        notes.append(f"{folder} holds only {inner[0].name}/: read the classes from {inner[0]}")
        folder = inner[0]


def _scan(class_dir: Path, check: bool = True) -> tuple[list[Path], list[tuple[str, str]]]:
    files, skipped = walk_files(class_dir)
    valid = []
    for file in files:
        reason = (check_image(file) if check else None) if is_image_file(file) else "not an image file extension"
        if reason is None:
            valid.append(file)
        else:
            skipped.append((str(file), reason))
    return valid, skipped


def _class_tree(root: Path, split_name: str, notes: list[str], check: bool = True) -> Dataset:
    if split_name != "all":
        root = _step_into_wrappers(root, notes, top=False)
    class_dirs = subfolders(root)
    loose = _loose_images(root)
    if not class_dirs:
        raise DatasetError(f"{root} has no class sub-folders",
                           "one sub-folder per class, e.g. data/cats/*.jpg and data/dogs/*.jpg",
                           f"{len(loose)} image file(s) directly in the folder" if loose else "no sub-folders",
                           hint="move the images into one folder per class, or give their classes in a "
                                "table: --labels FILE.csv")
    _refuse_case_twins(root, [d.name for d in class_dirs])
    skipped = [(str(p), "an image beside the class folders, in no class: left out") for p in loose]
    classes: dict[str, list[Path]] = {}
    for class_dir in class_dirs:
        classes[class_dir.name], problems = _scan(class_dir, check)
        skipped += problems
    empty = [name for name, files in classes.items() if not files]
    if empty and split_name in ("all", "train"):
        if len(classes) - len(empty) < 2:
            raise DatasetError(f"empty class folder(s): {', '.join(str(root / n) for n in empty)}",
                               "at least two class folders with a readable image",
                               hint="add images to them (unreadable files are listed above)")
        notes.append(f"class folder(s) with no readable image left out: {', '.join(str(root / n) for n in empty)}")
        classes = {name: files for name, files in classes.items() if files}
    names = list(classes)
    paths = [p for name in names for p in classes[name]]
    labels = np.array([i for i, name in enumerate(names) for _ in classes[name]], dtype=np.int64)
    dataset = Dataset(names, {split_name: Split(split_name, paths, labels)}, str(root), skipped)
    dataset.layout = {split_name: str(root)}
    return dataset


def _refuse_case_twins(root: Path, names: list[str]) -> None:
    by_lower: dict[str, list[str]] = {}
    for name in names:
        by_lower.setdefault(name.casefold(), []).append(name)
    for twins in by_lower.values():
        if len(twins) > 1:
            raise DatasetError(f"class folders of {root} differ only in letter case: {', '.join(twins)}",
                               "one folder per class (on Windows and macOS these are the same folder)",
                               hint=f"move the images of {twins[1]}/ into {twins[0]}/ (or rename one)")


def _split_tree(root: Path, split_dirs: dict[str, Path], notes: list[str], check: bool = True) -> Dataset:
    parts = {name: _class_tree(folder, name, notes, check) for name, folder in split_dirs.items()}
    names = parts["train"].class_names
    by_lower = {n.casefold(): n for n in names}
    splits, skipped = {}, [(str(p), "an image beside the split folders, in no split: left out")
                           for p in _loose_images(root)]
    for role, part in parts.items():
        extra = [n for n in part.class_names if n.casefold() not in by_lower]
        if extra:
            raise DatasetError(f"classes {extra} appear in {split_dirs[role]} but not in {split_dirs['train']}",
                               "the same class folders in every split", hint="add training images or remove them")
        renamed = [n for n in part.class_names if n not in names]
        if renamed:
            notes.append(f"class folders of {split_dirs[role]} matched to training classes by letter case: "
                         + ", ".join(f"{n} -> {by_lower[n.casefold()]}" for n in renamed))
        remap = np.array([names.index(by_lower[n.casefold()]) for n in part.class_names], dtype=np.int64)
        split = part.splits[role]
        splits[role] = Split(role, split.items, remap[split.labels] if len(split) else split.labels)
        skipped += part.skipped
    dataset = Dataset(names, splits, str(root), skipped)
    dataset.layout = {role: str(folder) for role, folder in split_dirs.items()}
    return dataset

