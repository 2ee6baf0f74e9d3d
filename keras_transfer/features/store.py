"""Run-local feature files: a split's features saved beside the run, reused while nothing changed."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from stat import S_ISLNK

import numpy as np

from keras_transfer.data.dataset import Split
from keras_transfer.base.paths import NPZ_ERRORS, atomic_savez


def split_fingerprint(split: Split) -> str:
    """Hash of what a split holds: file paths, sizes and mtimes, or the array bytes."""
    digest = hashlib.sha256()
    if split.is_array:
        digest.update(np.ascontiguousarray(split.items).tobytes())
    else:
        folders: dict[Path, Path] = {}  # each folder resolved once, not every component of every path
        for path in split.items:
            stat = path.lstat()
            if S_ISLNK(stat.st_mode):
                resolved, stat = path.resolve(), path.stat()
            else:
                if path.parent not in folders:
                    folders[path.parent] = path.parent.resolve()
                resolved = folders[path.parent] / path.name
            digest.update(os.fsencode(resolved) + f"|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    digest.update(split.labels.tobytes())
    return digest.hexdigest()


def feature_key(split: Split, identity: dict) -> str:
    """Key of a split's features under a backbone identity (architecture, weights, size, ...)."""
    blob = json.dumps({"split": split_fingerprint(split), **identity}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def load_features(path: Path, key: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(features, indices) saved at ``path`` under ``key``, or None when absent or stale."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as saved:
            if str(saved["key"]) != key:
                return None
            return saved["features"], saved["indices"]
    except NPZ_ERRORS:
        return None  # unreadable or half-written: recompute


def save_features(path: Path, key: str, features: np.ndarray, indices: np.ndarray) -> None:
    """Writes atomically (temp file + rename), so a crash never leaves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_savez(path, key=np.array(key), features=features, indices=indices)
