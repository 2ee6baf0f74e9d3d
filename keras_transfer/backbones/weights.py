"""Weight files shared by every backbone: content hashes, keras' download cache, offline mode."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from pathlib import Path

from keras_transfer.base.errors import WeightsError

OFFLINE_ENV = "KERAS_TRANSFER_OFFLINE"


def offline_requested(flag: bool = False) -> bool:
    """True when ``flag`` is set or the environment says ``KERAS_TRANSFER_OFFLINE=1``."""
    return flag or os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


@contextlib.contextmanager
def offline_mode(flag: bool):
    """``KERAS_TRANSFER_OFFLINE=1`` while inside, when ``flag`` (a command's ``--offline``): what reads
    a backbone by its name alone (``hub:``, ``timm:``) sees the flag too; restored on the way out."""
    before = os.environ.get(OFFLINE_ENV)
    if flag:
        os.environ[OFFLINE_ENV] = "1"
    try:
        yield
    finally:
        if flag and before is None:
            os.environ.pop(OFFLINE_ENV, None)
        elif flag:
            os.environ[OFFLINE_ENV] = before


@functools.lru_cache(maxsize=32)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's content (memoised per path, size and modification time)."""
    stat = Path(path).stat()
    return _sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def local_weights_file(weights: str, expected: str) -> Path:
    """The existing file named by ``weights``; WeightsError when there is none.

    Args:
        weights: A path given by the user (``~`` is expanded).
        expected: What kind of file the backbone takes, for the message.
    """
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsError(f"weights file {weights!r} not found",
                           expected=f"'imagenet', 'none', or a path to {expected}", received=repr(weights))
    return path


def file_identity(weights: str) -> str:
    """``file:<sha12>``: the identity of weights loaded from a local file, by content."""
    return f"file:{file_sha256(local_weights_file(weights, 'an existing file'))[:12]}"


def keras_models_dir() -> Path:
    """Where ``keras.utils.get_file`` keeps downloaded application weights.

    ``$KERAS_HOME/models``, else ``~/.keras/models``; like keras, ``/tmp/.keras`` stands in
    for a home folder (or keras folder) that cannot be written.
    """
    home = os.environ.get("KERAS_HOME")
    if not home:
        user = os.path.expanduser("~")
        home = os.path.join(user if os.access(user, os.W_OK) else "/tmp", ".keras")
    if os.path.isdir(home) and not os.access(home, os.W_OK):
        home = "/tmp/.keras"
    return Path(home, "models")
