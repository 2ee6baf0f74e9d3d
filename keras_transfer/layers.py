"""Serializable preprocessing layers that travel inside saved models (no Lambda layers)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_transfer")
class ImageNormalization(keras.layers.Layer):
    """Casts RGB pixels in [0, 255] to float and applies ``(x - mean) / std`` per channel.

    Args:
        mean: Three per-channel means (in RGB order, or BGR order when ``bgr``).
        std: Three per-channel standard deviations.
        bgr: Flip RGB input to BGR before normalising (Caffe-style weights).

    Example:
        >>> layer = ImageNormalization(mean=(127, 127, 127), std=(128, 128, 128))
        >>> float(layer(ops.ones((1, 1, 1, 3)) * 255)[0, 0, 0, 0])
        1.0
    """

    def __init__(self, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), bgr: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.mean, self.std, self.bgr = [float(m) for m in mean], [float(s) for s in std], bool(bgr)

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.bgr:
            x = ops.flip(x, axis=-1)
        mean = ops.convert_to_tensor(self.mean, dtype=self.compute_dtype)
        std = ops.convert_to_tensor(self.std, dtype=self.compute_dtype)
        return (x - mean) / std

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std, "bgr": self.bgr}
