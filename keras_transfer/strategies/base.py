"""The strategy interface shared by every training strategy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import keras

from keras_transfer.backbones import BackboneSpec
from keras_transfer.config import TrainConfig
from keras_transfer.data.dataset import Dataset
from keras_transfer.errors import unknown_choice
from keras_transfer.features import FeatureSource


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


@dataclass
class FitResult:
    """What a strategy returns: the end-to-end classifier, its head and training history.

    ``backbone_changed`` tells that the extractor's weights moved (fine-tune, scratch), so
    features must be recomputed for evaluation; ``config`` is the config actually trained
    (the auto planner resolves backbone and strategy) and ``features`` its feature source;
    ``notes`` are extra JSON files for the run folder.
    """

    classifier: keras.Model
    head: keras.Model
    history: dict[str, list[float]] = field(default_factory=dict)
    backbone_changed: bool = False
    config: TrainConfig | None = None
    features: FeatureSource | None = None
    notes: dict[str, Any] = field(default_factory=dict)


class Strategy(Protocol):
    name: str
    default_epochs: int

    def fit(self, context: TrainContext) -> FitResult: ...


def strategies() -> dict[str, type]:
    from keras_transfer.strategies.auto import AutoStrategy
    from keras_transfer.strategies.bottleneck import BottleneckStrategy
    from keras_transfer.strategies.finetune import FinetuneStrategy
    from keras_transfer.strategies.frozen import FrozenStrategy
    from keras_transfer.strategies.scratch import ScratchStrategy

    return {s.name: s for s in (BottleneckStrategy, FrozenStrategy, FinetuneStrategy, ScratchStrategy, AutoStrategy)}


def get_strategy(name: str) -> Strategy:
    known = strategies()
    if name not in known:
        raise unknown_choice("strategy", name, known)
    return known[name]()
