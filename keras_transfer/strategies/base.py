"""The strategy interface shared by every training strategy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from keras_transfer.backbones import BackboneSpec
from keras_transfer.config import TrainConfig
from keras_transfer.data.dataset import Dataset
from keras_transfer.base.errors import unknown_choice
from keras_transfer.features import FeatureSource

if TYPE_CHECKING:
    import keras

    from keras_transfer.inference.head import LinearHead


@dataclass
class TrainContext:
    """What a strategy gets: the validated config, the data, the backbone and its features.

    ``make_features(config)`` builds the FeatureSource of another config (the auto planner
    uses it to probe backbones); ``checkpoints`` is where best weights and backups go.
    """

    config: TrainConfig
    dataset: Dataset
    spec: BackboneSpec
    features: FeatureSource
    checkpoints: Path
    make_features: Callable[[TrainConfig], FeatureSource] | None = None
    deadline: float | None = None  # time.perf_counter() by which training must stop (auto's budget)
    started: float | None = None  # time.perf_counter() when train() began


@dataclass
class FitResult:
    """What a strategy returns: the end-to-end classifier, its head and training history.

    A solver-fitted head is a NumPy ``LinearHead`` and ``classifier`` is None: the run's
    ``model.keras`` is then written from a cached template without importing Keras.

    ``backbone_changed`` tells that the extractor's weights moved (fine-tune, scratch), so
    features must be recomputed for evaluation; ``config`` is the config actually trained
    (the auto planner resolves backbone and strategy) and ``features`` its feature source;
    ``notes`` are extra JSON files for the run folder; ``fit_on`` the splits a solved head
    learned from (the unknown-image scorer and the pixel baseline learn from the same).
    """

    classifier: keras.Model | None
    head: keras.Model | LinearHead
    history: dict[str, list[float]] = field(default_factory=dict)
    backbone_changed: bool = False
    config: TrainConfig | None = None
    features: FeatureSource | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    selection: dict[str, Any] = field(default_factory=dict)  # how the choices were made, on which images
    fit_on: list = field(default_factory=list)  # the splits the head learned from (default: train)


class Strategy(Protocol):
    name: str
    default_epochs: int

    def fit(self, context: TrainContext) -> FitResult: ...


_CLASSES = {"bottleneck": "BottleneckStrategy", "frozen": "FrozenStrategy", "finetune": "FinetuneStrategy",
            "scratch": "ScratchStrategy", "auto": "AutoStrategy"}


def get_strategy(name: str) -> Strategy:
    """A new strategy object; only its own module is imported (the default one needs no keras)."""
    import importlib

    if name not in _CLASSES:
        raise unknown_choice("strategy", name, _CLASSES)
    return getattr(importlib.import_module(f"keras_transfer.strategies.{name}"), _CLASSES[name])()
