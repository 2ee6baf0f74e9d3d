"""User-facing messages through the standard ``logging`` module, and progress for long phases.

Messages go to the ``keras_transfer`` logger, which has one handler on stderr (info as is,
warnings prefixed ``warning:``); ``set_quiet`` (``--quiet``) raises its level to WARNING.
Applications that configure logging themselves can replace the handler or raise the level.
Progress is a live tqdm bar on a terminal; where stderr is a file or a pipe (a log, CI), each
phase writes one line when it ends instead of thousands of carriage-return updates.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time

logger = logging.getLogger("keras_transfer")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (tests and notebooks swap it)."""

    def __init__(self):
        super().__init__()
        self.setFormatter(_Format())

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # logging.StreamHandler.__init__ assigns it
        pass


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:  # logger.exception(...): keep the traceback
            message += "\n" + self.formatException(record.exc_info)
        return f"warning: {message}" if record.levelno >= logging.WARNING else message


if not logger.handlers:
    logger.addHandler(_StderrHandler())
    logger.setLevel(logging.INFO)
    logger.propagate = False


def set_quiet(quiet: bool) -> None:
    """Silences info messages and progress (warnings still print)."""
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


def quiet() -> bool:
    return not logger.isEnabledFor(logging.INFO)


def info(message: str) -> None:
    logger.info(message)


def warn(message: str) -> None:
    logger.warning(message)


def printable(text: str) -> str:
    """Text any output can hold: bytes of a file name that are not UTF-8 (held by Python as
    surrogate escapes) become U+FFFD, for HTML, figures and fonts that would refuse them."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def figure_text(text: str) -> str:
    """``printable`` text that matplotlib shows as written (it reads ``$...$`` as maths)."""
    return printable(str(text)).replace("$", r"\$")


class _PhaseLine:
    """Progress where stderr is not a terminal: one line with the count, time and rate at the end."""

    def __init__(self, iterable, total: int | None, desc: str, unit: str):
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n, self.postfix, self.closed, self.start = 0, "", False, time.perf_counter()

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.n += 1
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        if self.closed or self.n == 0:
            self.closed = True
            return
        self.closed = True
        seconds = time.perf_counter() - self.start
        rate = f", {self.n / seconds:.1f} {self.unit}/s" if seconds > 0 else ""
        info(f"{self.desc}: {self.n} {self.unit} in {seconds:.1f} s{rate}" + (f" ({self.postfix})" if self.postfix else ""))


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (IPython loaded, its kernel app configured)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def progress(iterable=None, total: int | None = None, desc: str = "", unit: str = "img"):
    """A tqdm bar (rate and ETA) on a terminal, a notebook widget bar in Jupyter (with ipywidgets),
    a one-line summary elsewhere, nothing when quiet."""
    from tqdm import tqdm

    if quiet():
        return tqdm(iterable, total=total, disable=True)
    if in_notebook():
        from tqdm.notebook import tqdm as notebook_tqdm

        try:
            return notebook_tqdm(iterable, total=total, desc=desc, unit=unit, leave=False)
        except ImportError:  # no ipywidgets: tqdm.notebook cannot draw a widget
            pass
    if not sys.stderr.isatty():
        return _PhaseLine(iterable if iterable is not None else (), total, desc, unit)
    return tqdm(iterable, total=total, desc=desc, unit=unit, dynamic_ncols=True, leave=False, file=sys.stderr)


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


_NUMBER = re.compile(r"[-+]?\d[\d.,]*(e[-+]?\d+)?")


def table(header: list[str], rows: list[list], title: str | None = None) -> str:
    """Rows as an aligned text table (rich: numeric columns right-aligned, floats to 4 places,
    no colour codes), for a terminal and a log file alike."""
    import io

    from rich import box
    from rich.console import Console
    from rich.table import Table

    cells = [["" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    grid = Table(*header, title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    for i, column in enumerate(grid.columns):  # numbers (as given or as text) align right
        values = [row[i] for row in cells if row[i]]
        column.justify = "right" if values and all(_NUMBER.fullmatch(v) for v in values) else "left"
    for row in cells:
        grid.add_row(*row)
    buffer = io.StringIO()
    Console(file=buffer, width=200, color_system=None, legacy_windows=False).print(grid)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()).strip("\n")
