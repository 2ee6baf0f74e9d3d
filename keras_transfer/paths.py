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
