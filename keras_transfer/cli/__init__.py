"""Command-line interface: a thin layer over keras_transfer.run.

Errors caused by the user, and the operating system refusing a write (disk full, read-only,
no permission), print one message on stderr and exit 1 (or 2 for bad options); Ctrl-C, SIGTERM and
SIGHUP stop a command the same clean way (one line says what was kept) and exit 130;
``--json`` prints machine-readable output on stdout; ``--quiet`` silences progress. Each
sub-command lives in one of ``train``, ``audit``, ``use``, ``deploy``, ``inspect`` and registers itself
with ``cli.options.command``; nothing heavy is imported before the options are parsed.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import threading

from keras_transfer.base import log
from keras_transfer.base.errors import KerasTransferError
from keras_transfer.cli.options import Help


def build_parser() -> argparse.ArgumentParser:
    from keras_transfer import __version__
    from keras_transfer.cli import audit, collect, deploy, inspect, localize, queue, studio, train, use

    parser = argparse.ArgumentParser(prog="keras-transfer", description=__doc__.splitlines()[0],
                                     formatter_class=Help,
                                     epilog="example:\n  keras-transfer train photos/ --out runs/photos && "
                                            "keras-transfer predict runs/photos new_photo.jpg")
    parser.add_argument("--version", action="version", version=f"keras-transfer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    parser.commands = sub.choices  # name -> sub-command parser, for checks after parsing
    for module in (train, audit, use, deploy, inspect, collect, localize, queue, studio):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs one command in this process (a test, a notebook, a script) and returns its exit code; the
    process's signal handlers are as they were afterwards (a stopped command must not leave its
    caller deaf to SIGTERM or Ctrl-C)."""
    saved = {name: signal.getsignal(getattr(signal, name)) for name in _SIGNALS if hasattr(signal, name)}
    try:
        return _run(argv)
    finally:
        if threading.current_thread() is threading.main_thread():
            for name, handler in saved.items():
                signal.signal(getattr(signal, name), handler)


def entry() -> None:
    """The ``keras-transfer`` console script and ``python -m keras_transfer.cli``: one command, then exit.

    A stopped command exits 130 at once: what it kept is already written, and no finalizer interrupted by
    the same signal can turn the clean stop into a death by SIGINT."""
    try:
        code = _run(None)
    except KeyboardInterrupt:  # a stop that reached here past the command's own handling
        code = 130
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(code)


_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


def _run(argv: list[str] | None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 prints as its bytes, as ls does
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape")
    parser = build_parser()
    args = parser.parse_args(argv)
    _refuse_empty_values(parser.commands[args.command], args)
    log.set_quiet(getattr(args, "quiet", False))
    try:
        if args.command not in ("serve", "studio"):  # uvicorn stops these on SIGTERM (in-flight requests finish)
            _stop_on_signals()
        from keras_transfer.backbones.weights import offline_mode

        with offline_mode(getattr(args, "offline", False)):
            return args.handler(args)
    except KerasTransferError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt as error:
        _stop_listening()  # one stop is enough: a second signal must not interrupt the clean exit
        by = f" by {error.args[0]}" if error.args and str(error.args[0]).startswith("SIG") else ""
        kept = getattr(error, "kept", None)
        print(f"interrupted{by}: features extracted so far stay in the feature cache"
              + (f"; {kept}" if kept else "") + "; running the same command again resumes from there",
              file=sys.stderr)
        return 130
    except OSError as error:  # the machine refused: disk full, read-only, no permission ...
        if error.errno is None:  # not the operating system's answer: a bug, keep its traceback
            raise
        where = f": {error.filename}" if error.filename else ""
        print(f"error: {error.strerror or error}{where} — {_os_hint(error.errno)}", file=sys.stderr)
        return 1


def _interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _stop_on_signals() -> None:
    """SIGTERM (docker stop, timeout, Kubernetes, systemd) and SIGHUP (a closed terminal) stop a command
    as Ctrl-C does: a ``KeyboardInterrupt`` in the main thread, the clean stop every command has."""
    if threading.current_thread() is not threading.main_thread():  # main() called from a thread
        return
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _interrupt)


def _stop_listening() -> None:
    if threading.current_thread() is threading.main_thread():
        for name in _SIGNALS:
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), signal.SIG_IGN)


def _refuse_empty_values(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``--epochs=--`` reaches argparse as an empty list, which it stores without calling the type."""
    for action in parser._actions:
        if action.nargs is None and action.option_strings and getattr(args, action.dest, None) == []:
            parser.error(f"argument {'/'.join(action.option_strings)}: invalid value '--' (expected one value)")


def _os_hint(code: int) -> str:
    if code == errno.ENOSPC:
        return "free some space there, or write elsewhere (--out, KERAS_TRANSFER_CACHE)"
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "use a folder you can write to (--out, KERAS_TRANSFER_CACHE)"
    return "check that path and try again"


if __name__ == "__main__":
    sys.exit(main())
