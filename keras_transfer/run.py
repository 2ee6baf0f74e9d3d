"""The run folder: everything a training run leaves behind, and reading it back."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from keras_transfer.backbones import get_backbone
from keras_transfer.config import TUNED_STRATEGIES, TrainConfig
from keras_transfer.data.dataset import Dataset, load_dataset
from keras_transfer.errors import RunError
from keras_transfer.features import Deferred, FeatureSource, RuntimeOptions, make_executor

MODEL_FILE = "model.keras"
REQUIRED = (MODEL_FILE, "config.json", "class_names.json")


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

    def damaged(self, name: str, error: Exception) -> RunError:
        """The error for a file of this run that cannot be read as train wrote it."""
        return RunError(f"{name} of run {self.path} is damaged", f"the {name} train wrote",
                        f"{type(error).__name__}: {str(error)[:200]}",
                        hint=f"train again into this folder (or restore {name} from a copy)")

    @cached_property
    def config(self) -> TrainConfig:
        try:
            config = TrainConfig.load(self.path / "config.json")
        except (OSError, UnicodeDecodeError, ValueError, TypeError, AttributeError) as error:
            raise self.damaged("config.json", error) from error
        return config

    @cached_property
    def class_names(self) -> list[str]:
        try:
            names = json.loads((self.path / "class_names.json").read_text())
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise self.damaged("class_names.json", error) from error
        if not isinstance(names, list) or len(names) < 2 or not all(isinstance(n, str) for n in names):
            raise self.damaged("class_names.json", ValueError(f"not a list of class names: {str(names)[:80]}"))
        return names

    @cached_property
    def model(self):
        """The end-to-end classifier, loaded with Keras safe mode on."""
        import keras

        import keras_transfer.layers  # noqa: F401  (registers custom layers)

        try:
            return keras.saving.load_model(self.path / MODEL_FILE, safe_mode=True)
        except Exception as error:  # a truncated zip, garbage, a file of another Keras model format ...
            raise self.damaged(MODEL_FILE, error) from error

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

    def read(self, name: str) -> dict | None:
        """A JSON object the run folder holds (metrics.json, timing.json ...), None when absent."""
        file = self.path / name
        if not file.exists():
            return None
        try:
            value = json.loads(file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise self.damaged(name, error) from error
        if not isinstance(value, dict):
            raise self.damaged(name, ValueError(f"a JSON {type(value).__name__}, not an object"))
        return value


def dataset_of(config: TrainConfig) -> Dataset:
    """The dataset ``config`` trains on, split as at training (same seed and fractions)."""
    dataset = load_dataset(config.data, val_fraction=config.val_fraction, test_fraction=config.test_fraction,
                           seed=config.seed, max_per_class=config.max_per_class, labels=config.labels,
                           splits=config.splits)
    if config.exclude:
        from keras_transfer.audit.clean import exclude_files

        dataset = exclude_files(dataset, config.exclude)
    return dataset


def feature_source(config: TrainConfig, out: Path, extractor=None, executor=None) -> FeatureSource:
    """Features of ``config``'s backbone; a given (trained) extractor is identified by its weights.

    ``executor`` (``"local"``, ``"ray"`` or an executor object) extracts the cache misses; None
    takes ``config.executor`` at ``config.ray_address``. It is no part of the feature identity.

    Without ``extractor`` the backbone is a ``Deferred`` model: built (importing keras and
    torch) only if its features are not cached and its compiled engine does not exist yet.
    """
    spec = get_backbone(config.backbone)
    stages = config.pool_stages
    preprocessing = [part.preprocessing.as_dict() for part in spec.parts]
    identity = {"backbone": spec.name, "weights": spec.weights_identity(config.weights), "size": config.size,
                "pooling": config.pooling, "preprocessing": preprocessing if spec.members else preprocessing[0],
                **({"stages": stages} if stages > 1 else {})}  # one stage: the keys of earlier releases
    if extractor is not None and config.strategy in TUNED_STRATEGIES:
        from keras_transfer.model import weights_digest

        identity = {"backbone": f"{spec.name}+{config.strategy}", "weights": weights_digest(extractor),
                    "size": int(extractor.input_shape[1]), "pooling": config.pooling}
    if extractor is None:
        def build():
            from keras_transfer.model import build_extractor

            return build_extractor(spec, config.size, config.weights, config.pooling, config.offline, stages)

        extractor = Deferred(build, config.size, None if config.pooling == "spatial" else (spec.pooled_dim(stages),))
    if executor is None:
        executor = make_executor(config.executor, config.ray_address)
    return FeatureSource(extractor, identity, out / "features", config.resize,
                         RuntimeOptions(config.runtime, config.precision), config.seed, executor=executor)
