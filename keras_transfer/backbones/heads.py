"""Classifier heads: named presets reproducing the classic tutorials' heads, plus options.

A head maps backbone features to class probabilities. Pooled features are vectors (D,);
spatial features are maps (h, w, D), used by heads that convolve or flatten.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from keras_transfer.base.errors import ConfigError, unknown_choice

HeadFn = Callable[[keras.KerasTensor, "HeadOptions"], keras.KerasTensor]


class HeadOptions:
    """Hidden sizes, dropout and seed shared by all presets."""

    def __init__(self, hidden_units: tuple[int, ...] = (), dropout: float = 0.2, seed: int = 0):
        self.hidden_units, self.dropout, self.seed = hidden_units, dropout, seed

    def drop(self, x, name: str):
        return keras.layers.Dropout(self.dropout, seed=self.seed, name=name)(x) if self.dropout else x


def _pooled(x, name: str = "pool"):
    """Spatial maps are average-pooled; vectors pass through."""
    return keras.layers.GlobalAveragePooling2D(name=name)(x) if len(x.shape) == 4 else x


def _linear(x, o: HeadOptions):
    """Pool -> [Dense(relu) -> Dropout]* -> Dropout -> softmax (the bottleneck default)."""
    x = _pooled(x)
    for i, units in enumerate(o.hidden_units):
        x = o.drop(x, f"dropout_{i}")
        x = keras.layers.Dense(units, activation="relu", name=f"hidden_{i}")(x)
    return o.drop(x, "dropout")


def _gap_dense_bn(x, o: HeadOptions):
    """GAP -> Dense(1024, relu) -> BatchNorm (the Keras fine-tuning tutorial's head)."""
    x = _pooled(x)
    for i, units in enumerate(o.hidden_units or (1024,)):
        x = keras.layers.Dense(units, activation="relu", name=f"hidden_{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn_{i}")(x)
    return o.drop(x, "dropout")


def _flatten_bn(x, o: HeadOptions):
    """Flatten -> BN -> Dense(50, relu) -> Dropout (the bottleneck-features tutorial's head)."""
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    for i, units in enumerate(o.hidden_units or (50,)):
        x = keras.layers.Dense(units, activation="relu", name=f"hidden_{i}")(x)
    return o.drop(x, "dropout")


def _conv(x, o: HeadOptions):
    """Conv2D(100, 2, relu) over the spatial map -> Dropout -> GAP (the CAM-friendly head)."""
    if len(x.shape) != 4:
        raise ConfigError("the 'conv' head needs spatial features", "--pooling spatial",
                          f"pooled features of shape {tuple(x.shape[1:])}")
    filters = o.hidden_units[0] if o.hidden_units else 100
    x = keras.layers.Conv2D(filters, 2, activation="relu", padding="same", name="conv")(x)
    return keras.layers.GlobalAveragePooling2D(name="gap")(o.drop(x, "dropout"))


HEADS: dict[str, HeadFn] = {"linear": _linear, "gap_dense_bn": _gap_dense_bn,
                            "flatten_bn": _flatten_bn, "conv": _conv}


def build_head(feature_shape: tuple[int, ...], num_classes: int, preset: str = "linear",
               options: HeadOptions | None = None) -> keras.Model:
    """Builds a head model named ``head``: features -> preset body -> Dense(softmax).

    Example:
        >>> build_head((1280,), 3).output_shape
        (None, 3)
    """
    if preset not in HEADS:
        raise unknown_choice("head", preset, HEADS)
    inputs = keras.Input(tuple(feature_shape), name="features")
    x = HEADS[preset](inputs, options or HeadOptions())
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="head")


def build_head_for(feature_shape: tuple[int, ...], num_classes: int, config) -> keras.Model:
    """``build_head`` with the preset, hidden sizes, dropout and seed of a TrainConfig."""
    options = HeadOptions(tuple(config.hidden_units), config.dropout, config.seed)
    return build_head(tuple(feature_shape), num_classes, config.head, options)
