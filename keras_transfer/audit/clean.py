"""Acting on an audit, safely: a keep list (or a folder of links) without the exact duplicates,
leaked copies and damaged files, and ``train --exclude`` reading such a list.

Nothing here writes into the data folder: a list or link folder inside it is refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from keras_transfer import log
from keras_transfer.data.dataset import Dataset
from keras_transfer.errors import ConfigError, DatasetError
from keras_transfer.paths import atomic_file

KEEP_HEADER = "# keras-transfer keep-list"


def inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def write_clean(result, target: str | Path) -> dict:
    """Writes the audited images minus ``result.excluded()``: a text list, or links in a folder.

    Args:
        result: An :class:`AuditResult` of a folder dataset.
        target: A file (one absolute path per line, a ``#`` header first), or a folder (an
            existing one, or a path ending in ``/``): symbolic links mirroring the dataset tree.

    Returns:
        {"path", "kept", "excluded"}.
    """
    target_text = str(target)
    target, root = Path(target).expanduser(), Path(result.source)
    if not root.is_dir():
        raise ConfigError("--write-clean needs a dataset folder", "a folder of image files", result.source)
    if inside(target, root):
        raise ConfigError(f"--write-clean {target} is inside the data folder {root}",
                          "a path outside the data folder (the audit never writes into it)",
                          hint="e.g. --write-clean clean.txt in the current folder")
    dropped = result.excluded()
    kept = [f for f in result.images if f not in dropped]
    if target.is_dir() or target_text.endswith(os.sep):
        _link_folder(kept, root, target)
    else:
        lines = [f"{KEEP_HEADER}: {len(kept)} of {len(result.images)} images of {root} "
                 f"(train --exclude {target.name} trains on these only)"]
        lines += [f"# left out: {f}  ({why})" for f, why in sorted(dropped.items())]
        text = "\n".join(lines + [str(Path(f).absolute()) for f in kept]) + "\n"
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_file(target, lambda tmp: Path(tmp).write_text(text, encoding="utf-8", errors="surrogateescape"))
    return {"path": str(target), "kept": len(kept), "excluded": len(dropped)}


def _link_folder(kept: list[str], root: Path, target: Path) -> None:
    for file in kept:
        link = target / Path(file).resolve().relative_to(root.resolve())
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path(file).resolve())


def read_list(path: str | Path) -> tuple[set[str], bool]:
    """(absolute paths in the list, whether it is a keep list) of an --exclude file."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except (OSError, ValueError) as error:
        raise DatasetError(f"cannot read the --exclude list {path}", "a text file, one image path per line",
                           f"{type(error).__name__}: {error}") from None
    lines = text.splitlines()
    keep = bool(lines) and lines[0].startswith(KEEP_HEADER)
    names = {str(Path(line.strip()).absolute()) for line in lines if line.strip() and not line.startswith("#")}
    return names, keep


def exclude_files(dataset: Dataset, list_path: str | Path) -> Dataset:
    """``dataset`` without the files of an --exclude list (or, for a keep list, without every other file)."""
    names, keep = read_list(list_path)
    splits, left_out = {}, 0
    for name, split in dataset.splits.items():
        if split.is_array:
            raise DatasetError("--exclude lists files", "a folder dataset", f"arrays ({dataset.source})")
        listed = np.array([str(Path(p).absolute()) in names for p in split.items], bool)
        chosen = np.flatnonzero(listed if keep else ~listed)
        left_out += len(split) - len(chosen)
        splits[name] = split.subset(chosen)
    dataset.splits = splits
    dataset.skipped = [(f, why) for f, why in dataset.skipped if (str(Path(f).absolute()) in names) == keep]
    dataset.notes.append(f"--exclude {list_path}: {left_out} image(s) left out")
    log.info(dataset.notes[-1])
    return dataset
