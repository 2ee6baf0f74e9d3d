"""The run folder: everything a training run leaves behind, and reading it back."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from keras_transfer.config import TrainConfig
from keras_transfer.errors import RunError
from keras_transfer.paths import atomic_file

MODEL_FILE = "model.keras"
REQUIRED = (MODEL_FILE, "config.json", "class_names.json")


def write_json(path: Path, data) -> None:
    """Writes JSON atomically (temp file + rename)."""
    text = json.dumps(data, indent=2)
    atomic_file(path, lambda tmp: Path(tmp).write_text(text))


@dataclass(frozen=True)
class Run:
    """A finished run folder.

    Example:
        >>> run = Run.open("runs/ants")  # doctest: +SKIP
        >>> run.class_names  # doctest: +SKIP
        ['ants', 'bees']
    """

    path: Path

    @classmethod
    def open(cls, path: str | Path) -> Run:
        path = Path(path)
        if not path.is_dir():
            raise RunError(f"run folder not found: {path}", "a folder written by `keras-transfer train --out`")
        missing = [name for name in REQUIRED if not (path / name).exists()]
        if missing:
            raise RunError(f"run folder {path} is incomplete", f"files {', '.join(REQUIRED)}",
                           f"missing {', '.join(missing)}", hint="re-run train with --out pointing here")
        return cls(path)

    @cached_property
    def config(self) -> TrainConfig:
        return TrainConfig.load(self.path / "config.json")

    @cached_property
    def class_names(self) -> list[str]:
        return json.loads((self.path / "class_names.json").read_text())

    @cached_property
    def model(self):
        """The end-to-end classifier, loaded with Keras safe mode on."""
        import keras

        import keras_transfer.layers  # noqa: F401  (registers custom layers)

        return keras.saving.load_model(self.path / MODEL_FILE, safe_mode=True)

    @cached_property
    def temperature(self) -> float:
        """The calibration temperature train fit (1.0 for runs without one)."""
        record = self.read("calibration.json") or {}
        try:
            temperature = float(record.get("temperature", 1.0))
        except (TypeError, ValueError, AttributeError):
            temperature = float("nan")
        if not 0.0 < temperature < float("inf"):
            raise RunError(f"calibration.json of run {self.path} is damaged", "a positive temperature",
                           repr(record)[:80], hint="delete calibration.json (confidences then uncalibrated) "
                                                   "or train again into this folder")
        return temperature

    def read(self, name: str):
        file = self.path / name
        if not file.exists():
            return None
        try:
            return json.loads(file.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RunError(f"{name} of run {self.path} is damaged", "the JSON file train wrote",
                           f"{type(error).__name__}: {error}", hint="train again into this folder") from error
