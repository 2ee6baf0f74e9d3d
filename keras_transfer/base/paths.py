"""Where the library keeps its caches."""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from keras_transfer.base import log
from keras_transfer.base.errors import KerasTransferError

MIN_FREE_BYTES = 256 * 2**20  # a cache root with less free space than this is treated as full
FALLBACK_NAME = "keras-transfer-cache"  # under tempfile.gettempdir(), when the cache root is unusable
_FIX = "set KERAS_TRANSFER_CACHE to a writable folder with space"
_fallbacks: dict[Path, Path] = {}  # unusable root -> the fallback chosen (and warned about) once


def _unusable(root: Path) -> str | None:
    """Why ``root`` cannot hold the cache (cannot be created, read-only, almost full), or None."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return f"cannot be created ({error.strerror or error})"
    if not os.access(root, os.W_OK):
        return "is not writable"
    free = shutil.disk_usage(root).free
    if free < MIN_FREE_BYTES:
        return f"has only {free / 2**20:.0f} MB free (less than {MIN_FREE_BYTES // 2**20} MB)"
    return None


def _usable_root() -> Path:
    root = Path(os.environ.get("KERAS_TRANSFER_CACHE") or Path.home() / ".cache" / "keras-transfer")
    if root in _fallbacks:
        return _fallbacks[root]
    reason = _unusable(root)
    if reason is None:
        return root
    fallback = Path(tempfile.gettempdir()) / FALLBACK_NAME
    problem = _unusable(fallback)
    if problem is not None:
        raise KerasTransferError(f"no usable cache folder: {root} {reason}, and the fallback {fallback} {problem}",
                                 expected=f"a writable folder with at least {MIN_FREE_BYTES // 2**20} MB free",
                                 hint=_FIX)
    log.warn(f"cache folder {root} {reason}; this run uses {fallback} instead ({_FIX})")
    _fallbacks[root] = fallback
    return fallback


def cache_dir(*parts: str) -> Path:
    """The cache root (``$KERAS_TRANSFER_CACHE`` or ``~/.cache/keras-transfer``), joined with parts.

    A root that cannot be created, is read-only or almost full (``MIN_FREE_BYTES``) is replaced,
    with one warning per process, by ``<tempdir>/keras-transfer-cache``; when that is unusable
    too, raises KerasTransferError naming both folders.
    """
    path = Path(_usable_root(), *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


# What np.load raises for a truncated, bit-flipped or foreign .npz: a truncated one still starts
# with "PK", so the zip reader fails before NumPy's checks do.
NPZ_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


def atomic_file(path: Path, write) -> Path:
    """Calls ``write(tmp)`` with a temporary path beside ``path``, then renames it to ``path``.

    Readers never see a half-written file, and a failed or interrupted write leaves none behind.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as a plain open() would create it (mkstemp makes it private)
        os.replace(tmp, path)
    except OSError as error:
        if error.filename is None:  # a failed write() (disk full) names no file: name the one being written
            error.filename = str(path)
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_savez(path: Path, **arrays) -> Path:
    """``np.savez`` of plain arrays (loaded back with ``allow_pickle=False``), written atomically."""
    import numpy as np

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:  # a handle: np.savez would append ".npz" to a bare name
            np.savez(handle, **arrays)

    return atomic_file(path, write)


def _strict(value):
    """JSON-safe: NaN and infinities become null (JSON has neither), NumPy scalars and arrays plain."""
    if isinstance(value, dict):
        return {str(k): _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # NumPy scalars and arrays
        return _strict(value.tolist())
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def strict_json(data, indent: int | None = 2) -> str:
    """``data`` as strict JSON text (``allow_nan=False``): what every file and ``--json`` print holds."""
    import json

    return json.dumps(_strict(data), indent=indent, allow_nan=False)


def write_json(path: Path, data) -> Path:
    """Writes ``data`` as indented strict JSON, atomically."""
    text = strict_json(data)
    return atomic_file(Path(path), lambda tmp: Path(tmp).write_text(text))
