"""Scratch strategy: a small CNN trained from random initialisation — the baseline the classic
tutorials compare transfer learning against (5 conv blocks + global average pooling).
"""

from __future__ import annotations

import keras

from keras_transfer.strategies.base import FitResult, TrainContext
from keras_transfer.strategies.frozen import fit_streamed

FILTERS = (32, 64, 128, 128, 256)
DEFAULT_SIZE = 64


def scratch_features(size: int, seed: int = 0) -> keras.Model:
    """uint8 (size, size, 3) -> /255 -> 5 x [Conv-BN-ReLU, MaxPool] -> GAP, named ``features``."""
    inputs = keras.Input((size, size, 3), name="pixels")
    x = keras.layers.Rescaling(1.0 / 255, name="normalize")(inputs)
    init = keras.initializers.HeNormal(seed=seed)
    for i, filters in enumerate(FILTERS):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=init,
                                name=f"block{i + 1}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"block{i + 1}_bn")(x)
        x = keras.layers.ReLU(name=f"block{i + 1}_act")(x)
        if i < len(FILTERS) - 1:
            x = keras.layers.MaxPooling2D(name=f"block{i + 1}_pool")(x)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D(name="pool")(x), name="features")


class ScratchStrategy:
    """Trains the small CNN end to end on streamed, augmented batches (no ImageNet weights)."""

    name = "scratch"
    default_epochs = 40

    def fit(self, context: TrainContext) -> FitResult:
        config = context.config
        features = scratch_features(config.input_size or DEFAULT_SIZE, config.seed)
        return fit_streamed(context, features, self.name, self.default_epochs, frozen=False)
