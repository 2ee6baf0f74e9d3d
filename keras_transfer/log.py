"""User-facing messages: warnings and info on stderr, silenced by ``set_quiet``."""

from __future__ import annotations

import contextlib
import os
import sys

_state = {"quiet": False}


def set_quiet(quiet: bool) -> None:
    """Silences info messages and progress bars (warnings still print)."""
    _state["quiet"] = quiet


def info(message: str) -> None:
    if not _state["quiet"]:
        print(message, file=sys.stderr)


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def progress(iterable=None, total: int | None = None, desc: str = "", unit: str = "img"):
    """A tqdm progress bar (images/s and ETA) on stderr, disabled when quiet."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=_state["quiet"],
                dynamic_ncols=True, leave=False, file=sys.stderr)


@contextlib.contextmanager
def silenced(fds: tuple[int, ...] = (1,)):
    """Sends file descriptors (default: stdout) to /dev/null: for converters that print their
    whole graph or progress from native code (a failure still raises its exception)."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(fd) for fd in fds]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            os.dup2(devnull, fd)
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        for fd, copy in zip(fds, saved):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)
