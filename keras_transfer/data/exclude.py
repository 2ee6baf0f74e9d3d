"""``train --exclude LIST``: a dataset without the files a list names (or with only those of a keep list).

A filter on the dataset, so it lives with the data; ``audit --write-clean`` writes such lists.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_transfer.base import log
from keras_transfer.base.errors import DatasetError
from keras_transfer.data.dataset import Dataset

KEEP_HEADER = "# keras-transfer keep-list"


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
