"""The strategy interface shared by every training strategy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import keras

from keras_transfer.backbones import BackboneSpec
from keras_transfer.config import TrainConfig
from keras_transfer.data.dataset import Dataset
from keras_transfer.errors import unknown_choice
from keras_transfer.features import FeatureSource


@dataclass
class TrainContext:
    """What a strategy gets: the validated config, the data, the backbone and its features."""

    config: TrainConfig
    dataset: Dataset
    spec: BackboneSpec
    features: FeatureSource


@dataclass
class FitResult:
    """What a strategy returns: the end-to-end classifier and its training history."""

    classifier: keras.Model
    head: keras.Model
    history: dict[str, list[float]] = field(default_factory=dict)


class Strategy(Protocol):
    name: str

    def fit(self, context: TrainContext) -> FitResult: ...


def get_strategy(name: str) -> Strategy:
    from keras_transfer.strategies.bottleneck import BottleneckStrategy

    strategies = {"bottleneck": BottleneckStrategy}
    if name not in strategies:
        raise unknown_choice("strategy", name, strategies)
    return strategies[name]()
