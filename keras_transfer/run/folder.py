"""The run folder: every file a training run leaves behind, named once here, and reading it back.

Writers (``run.train``, ``export``) and readers (everything else) use ``Files`` and ``Run``; no
other module spells a file name of a run folder (in the spirit of KerasHub's ``preset_utils``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from keras_transfer.base.errors import RunError
from keras_transfer.base.paths import NPZ_ERRORS
from keras_transfer.config import TrainConfig
from keras_transfer.evaluation.predictions import Predictions
from keras_transfer.inference.head import LinearHead
from keras_transfer.inference.unknown import KnnUnknown


class Files:
    """The names of a run folder's files and folders."""

    MODEL = "model.keras"  # the end-to-end classifier (plain Keras, safe mode)
    CONFIG = "config.json"  # TrainConfig
    CLASSES = "class_names.json"
    HEAD = "head.npz"  # a solved head's kernel and bias (Keras-free inference)
    UNKNOWN = "unknown.npz"  # the unknown-image scorer
    CALIBRATION = "calibration.json"  # temperature and how it was fit
    PREDICTIONS = "predictions.npz"  # the held-out split's raw probabilities
    METRICS = "metrics.json"
    HISTORY = "history.json"
    DATASET = "dataset.json"
    TIMING = "timing.json"
    AUDIT = "audit.json"
    MODEL_CARD = "MODEL_CARD.md"  # Hugging Face model card (run.model_card); export copies it
    EXPORT = "export"  # exported files and their parity table
    PARITY = "parity.json"  # in EXPORT
    FEATURES = "features"  # split feature files of this run
    CHECKPOINTS = "checkpoints"

    REQUIRED = (MODEL, CONFIG, CLASSES)


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
    def open(cls, path: str | Path | Run) -> Run:
        """The run folder at ``path`` (a ``Run`` is returned as it is)."""
        if isinstance(path, Run):
            return path
        path = Path(path)
        if not path.is_dir():
            raise RunError(f"run folder not found: {path}", "a folder written by `keras-transfer train --out`")
        missing = [name for name in Files.REQUIRED if not (path / name).exists()]
        if missing:
            raise RunError(f"run folder {path} is incomplete", f"files {', '.join(Files.REQUIRED)}",
                           f"missing {', '.join(missing)}", hint="re-run train with --out pointing here")
        return cls(path)

    def _repr_html_(self) -> str:
        """Jupyter: held-out accuracy and baseline, per-class table, confusion matrix, mistakes."""
        from keras_transfer.run.notebook import run_html

        return run_html(self)

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def export_dir(self) -> Path:
        return self.path / Files.EXPORT

    def damaged(self, name: str, error: Exception) -> RunError:
        """The error for a file of this run that cannot be read as train wrote it."""
        return RunError(f"{name} of run {self.path} is damaged", f"the {name} train wrote",
                        f"{type(error).__name__}: {str(error)[:200]}",
                        hint=f"train again into this folder (or restore {name} from a copy)")

    @cached_property
    def config(self) -> TrainConfig:
        try:
            config = TrainConfig.load(self.file(Files.CONFIG))
        except (OSError, UnicodeDecodeError, ValueError, TypeError, AttributeError) as error:
            raise self.damaged(Files.CONFIG, error) from error
        return config

    @cached_property
    def class_names(self) -> list[str]:
        try:
            names = json.loads(self.file(Files.CLASSES).read_text())
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise self.damaged(Files.CLASSES, error) from error
        if not isinstance(names, list) or len(names) < 2 or not all(isinstance(n, str) for n in names):
            raise self.damaged(Files.CLASSES, ValueError(f"not a list of class names: {str(names)[:80]}"))
        return names

    @cached_property
    def model(self):
        """The end-to-end classifier, loaded with Keras safe mode on."""
        import keras

        import keras_transfer.backbones.layers  # noqa: F401  (registers custom layers)

        try:
            return keras.saving.load_model(self.file(Files.MODEL), safe_mode=True)
        except Exception as error:  # a truncated zip, garbage, a file of another Keras model format ...
            raise self.damaged(Files.MODEL, error) from error

    @cached_property
    def temperature(self) -> float:
        """The calibration temperature train fit (1.0 for runs without one)."""
        record = self.read(Files.CALIBRATION) or {}
        try:
            temperature = float(record.get("temperature", 1.0))
        except (TypeError, ValueError, AttributeError):
            temperature = float("nan")
        if not 0.0 < temperature < float("inf"):
            raise RunError(f"{Files.CALIBRATION} of run {self.path} is damaged", "a positive temperature",
                           repr(record)[:80], hint=f"delete {Files.CALIBRATION} (confidences then uncalibrated) "
                                                   "or train again into this folder")
        return temperature

    @property
    def metrics(self) -> dict:
        return self.read(Files.METRICS) or {}

    def solved_head(self) -> LinearHead | None:
        """The solved head (``head.npz``), None for runs whose head Keras trained."""
        return self._npz(Files.HEAD, LinearHead.load)

    def unknown(self) -> KnnUnknown | None:
        """The unknown-image scorer, None for runs without one."""
        return self._npz(Files.UNKNOWN, KnnUnknown.load)

    def predictions(self) -> Predictions | None:
        """The held-out split's raw (uncalibrated) predictions train saved, None for older runs."""
        return self._npz(Files.PREDICTIONS, Predictions.load)

    def _npz(self, name: str, load):
        if not self.file(name).is_file():
            return None
        try:
            return load(self.file(name))
        except NPZ_ERRORS as error:  # np.load of a truncated or foreign file
            raise self.damaged(name, error) from error

    def read(self, name: str) -> dict | None:
        """A JSON object the run folder holds (metrics.json, timing.json ...), None when absent."""
        file = self.file(name)
        if not file.exists():
            return None
        try:
            value = json.loads(file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise self.damaged(name, error) from error
        if not isinstance(value, dict):
            raise self.damaged(name, ValueError(f"a JSON {type(value).__name__}, not an object"))
        return value
