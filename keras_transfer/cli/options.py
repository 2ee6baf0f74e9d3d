"""What every sub-command shares: its parser (defaults and examples in the help), ``--quiet``,
``--json`` and the executor options."""

from __future__ import annotations

import argparse


class Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every default, and examples as written."""


def command(sub, name: str, help: str, examples: list[str], run) -> argparse.ArgumentParser:
    """A sub-command whose help shows its defaults and ``examples``; ``run(args)`` returns the exit code."""
    epilog = "example" + ("s" if len(examples) > 1 else "") + ":\n" + "\n".join(f"  {e}" for e in examples)
    parser = sub.add_parser(name, help=help, description=help, formatter_class=Help, epilog=epilog)
    parser.set_defaults(handler=run)
    return parser


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars or info messages")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")


def add_executor(parser: argparse.ArgumentParser) -> None:
    """``--executor`` / ``--ray-address``: where cache misses are extracted (commands other than train)."""
    parser.add_argument("--executor", default="local", help="where the features are extracted: local | ray "
                                                            "(a Ray Data actor pool)")
    parser.add_argument("--ray-address", default=None, help="--executor ray: cluster address, e.g. ray://head:10001 "
                                                            "(default: $RAY_ADDRESS, else a new local Ray instance)")
