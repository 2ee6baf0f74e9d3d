"""Typed exceptions with a "what / expected / received" message.

Every error a user can cause derives from :class:`KerasTransferError`; the CLI turns
them into one line on stderr and a non-zero exit code instead of a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class KerasTransferError(Exception):
    """Base class of every error caused by user input.

    Args:
        what: What went wrong, naming the place (file, folder, option).
        expected: What the library expected instead.
        received: What it actually got.
        hint: What the user can do about it.
    """

    exit_code = 1

    def __init__(self, what: str, expected: str = "", received: str = "", hint: str = ""):
        self.what, self.expected, self.received, self.hint = what, expected, received, hint
        parts = [what]
        if expected:
            parts.append(f"expected: {expected}")
        if received:
            parts.append(f"received: {received}")
        if hint:
            parts.append(f"hint: {hint}")
        super().__init__("\n  ".join(parts))


class DatasetError(KerasTransferError):
    """The dataset on disk or in memory cannot be used."""


class ConfigError(KerasTransferError):
    """An option or argument is out of range or unknown."""

    exit_code = 2


class WeightsError(KerasTransferError):
    """Backbone weights cannot be found, downloaded or loaded."""


class RunError(KerasTransferError):
    """A run folder is missing or incomplete."""


def unknown_choice(kind: str, received: str, choices: Iterable[str]) -> ConfigError:
    """Builds a ConfigError for an unknown name, suggesting close matches."""
    choices = sorted(choices)
    close = difflib.get_close_matches(received, choices, n=3)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return ConfigError(f"unknown {kind} {received!r}", expected=f"one of {', '.join(choices)}",
                       received=repr(received), hint=hint)
