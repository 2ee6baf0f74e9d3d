"""How the folders of a dataset are laid out: split folders under the names datasets use,
system clutter to ignore, and a symlink-safe walk over a folder's files."""

from __future__ import annotations

import os
from pathlib import Path

from keras_transfer.base.errors import ConfigError, DatasetError
from keras_transfer.data.images import is_image_file, special_file

SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "dev": "val", "test": "test", "testing": "test"}
# Kaggle-style names: ``training_set``, ``test-images``, ``Validation Data`` ... (any letter case)
_SPLIT_SUFFIXES = ("set", "sets", "data", "images", "imgs", "split")
# Written by operating systems, archivers and tools, never part of a dataset (hidden ``.*`` names too)
SYSTEM_NAMES = frozenset({"__macosx", "thumbs.db", "ehthumbs.db", "desktop.ini", "@eadir", "$recycle.bin",
                          "system volume information", "__pycache__", "icon\r"})


def split_role(folder_name: str) -> str | None:
    """``train`` / ``val`` / ``test`` for a split folder's name, None for any other folder."""
    words = folder_name.lower().replace("-", "_").replace(" ", "_").split("_")
    while len(words) > 1 and words[-1] in _SPLIT_SUFFIXES:
        words = words[:-1]
    return SPLIT_ALIASES.get("_".join(words))


def is_system(path: Path) -> bool:
    """True for hidden files and folders and the clutter of macOS, Windows and NAS tools."""
    return path.name.startswith(".") or path.name.lower() in SYSTEM_NAMES


def subfolders(folder: Path) -> list[Path]:
    """The folder's sub-folders (symlinked ones included), sorted, without system ones."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not is_system(p))


def walk_files(folder: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """Every file under ``folder``, following symlinks but never the same folder twice.

    Returns (files, problems): a symlink loop or a folder seen twice is reported once, a
    broken link is reported, so is what is not a regular file (a FIFO, a device or socket, or a
    link to one) or is too large to read, and system files are left out silently. Sorted by path.
    """
    files, problems, seen = [], [], set()
    for top, dirs, names in os.walk(folder, followlinks=True, onerror=lambda e: problems.append(
            (str(e.filename), f"cannot read the folder: {e.strerror}"))):
        real = os.path.realpath(top)
        if real in seen:
            problems.append((top, "a symbolic link to a folder already read (a loop?): not read twice"))
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not is_system(Path(d)))
        for name in sorted(names):
            path = Path(top, name)
            if is_system(path):
                continue
            if path.is_symlink() and not path.exists():
                problems.append((str(path), "a broken symbolic link"))
            elif reason := special_file(path):  # a FIFO, device, socket: listed, never opened
                problems.append((str(path), reason))
            else:
                files.append(path)
    return files, problems


def parse_splits(text: str | None) -> dict[str, str]:
    """``"train=seg_train,test=seg_test"`` -> {"train": "seg_train", "test": "seg_test"}."""
    if not text:
        return {}
    chosen = {}
    for part in text.split(","):
        role, _, name = part.partition("=")
        role = SPLIT_ALIASES.get(role.strip().lower())
        if role is None or not name.strip():
            raise ConfigError("invalid --splits", "SPLIT=FOLDER pairs with SPLIT in train, val, test, "
                              "e.g. train=seg_train,test=seg_test", repr(text))
        chosen[role] = name.strip()
    return chosen


def find_split_folders(root: Path, chosen: dict[str, str]) -> dict[str, Path]:
    """The split folders of ``root``: those ``chosen`` by name (``--splits``), then the recognised ones.

    Raises:
        DatasetError: a chosen folder is missing, or two folders claim one split.
    """
    folders = {role: root / name for role, name in chosen.items()}
    for role, folder in folders.items():
        if not folder.is_dir():
            raise DatasetError(f"--splits names {folder} as the {role} split, but it is not a folder",
                               "names of folders inside the data folder",
                               f"folders {[p.name for p in subfolders(root)]}")
    found: dict[str, list[Path]] = {}
    for folder in subfolders(root):
        if (role := split_role(folder.name)) and role not in folders and folder not in folders.values():
            found.setdefault(role, []).append(folder)
    for role, clash in found.items():
        if len(clash) > 1:
            raise DatasetError(f"{root} has {len(clash)} {role} folders: {', '.join(f.name for f in clash)}",
                               "one folder per split (train, val, test and their usual names)",
                               hint=f"say which one with --splits {role}={clash[0].name}, or keep one of them")
    return {**{role: clash[0] for role, clash in found.items()}, **folders}


def collect_images(inputs: list[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Expands files and folders (recursively) into image paths; returns (paths, problems)."""
    paths, problems = [], []
    for item in map(Path, inputs):
        if item.is_dir():
            files, trouble = walk_files(item)  # follows links, never round a loop
            found = [p for p in files if is_image_file(p)]
            paths += found
            problems += trouble
            if not found:
                problems.append((str(item), "folder holds no image files"))
        elif item.is_file():
            paths.append(item)
        elif reason := special_file(item):  # a FIFO, device or socket is never opened
            problems.append((str(item), reason))
        else:
            problems.append((str(item), "no such file or folder"))
    return paths, problems
