"""Where the library keeps its caches."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """The cache root (``$KERAS_TRANSFER_CACHE`` or ``~/.cache/keras-transfer``), joined with parts."""
    root = os.environ.get("KERAS_TRANSFER_CACHE") or Path.home() / ".cache" / "keras-transfer"
    path = Path(root, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_file(path: Path, write) -> Path:
    """Calls ``write(tmp)`` with a temporary path beside ``path``, then renames it to ``path``.

    Readers never see a half-written file, and a failed or interrupted write leaves none behind.
    """
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as a plain open() would create it (mkstemp makes it private)
        os.replace(tmp, path)
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
