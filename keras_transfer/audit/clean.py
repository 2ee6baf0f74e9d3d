"""Acting on an audit, safely: a keep list (or a folder of links) without the exact duplicates,
leaked copies and damaged files, and ``train --exclude`` reading such a list.

Nothing here writes into the data folder: a list or link folder inside it is refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from keras_transfer.base import log
from keras_transfer.data.dataset import Dataset
from keras_transfer.base.errors import ConfigError, DatasetError
from keras_transfer.base.paths import atomic_file
from keras_transfer.data.exclude import KEEP_HEADER



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
