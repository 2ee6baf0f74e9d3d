"""Preprocessing that travels inside saved models, built from Keras' own layers (no Lambda).

``normalization`` is what new models use: a ``Rescaling`` (per-channel scale and offset), or
for Caffe-style BGR weights one frozen 1x1 convolution that swaps the channels and normalises,
so a saved file loads with plain Keras in safe mode, on any backend, without this package.
``ImageNormalization`` stays registered so that runs saved by earlier releases still load.
"""

from __future__ import annotations

import keras
from keras import ops


def normalization(mean, std, bgr: bool = False, name: str = "normalize") -> keras.layers.Layer:
    """``(x - mean) / std`` per channel (after an RGB -> BGR swap when ``bgr``) as one Keras layer.

    RGB: a ``Rescaling`` with per-channel scale and offset (no weights). BGR: a frozen 1x1
    ``Conv2D`` whose kernel is the channel permutation divided by ``std`` and whose bias is
    ``-mean / std``: the swap and the normalisation in one standard layer.

    Example:
        >>> layer = normalization((127, 127, 127), (128, 128, 128))
        >>> float(layer(ops.ones((1, 1, 1, 3)) * 255)[0, 0, 0, 0])
        1.0
    """
    import numpy as np

    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    if not bgr:
        return keras.layers.Rescaling(scale=(1.0 / std).tolist(), offset=(-mean / std).tolist(), name=name)
    kernel = np.zeros((1, 1, 3, 3))
    for c in range(3):  # output channel c (BGR order) reads input channel 2 - c (RGB order)
        kernel[0, 0, 2 - c, c] = 1.0 / std[c]
    return keras.layers.Conv2D(3, 1, trainable=False, name=name, kernel_initializer=keras.initializers.Constant(kernel),
                               bias_initializer=keras.initializers.Constant(-mean / std))


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


@keras.saving.register_keras_serializable(package="keras_transfer")
class OnnxFeatures(keras.layers.Layer):
    """The feature graph of an ``onnx:`` encoder (``onnx_encoder``) run by ONNX Runtime inside Keras.

    Pixels (N, S, S, 3) in [0, 255] -> pooled features (N, D). The layer holds the encoder's
    content hash, not its bytes: the encoder is read from the store (``<cache>/encoders``). It
    has no gradient (an ONNX Runtime session), so Grad-CAM and fine-tuning are not available; the
    feature engine compiles the same graph (``write_features_onnx``) with OpenVINO.
    """

    def __init__(self, encoder: str, feature_dim: int, pooling: str = "avg", **kwargs):
        kwargs["trainable"] = False
        super().__init__(**kwargs)
        self.encoder, self.feature_dim, self.pooling = encoder, int(feature_dim), pooling
        self._session = None

    def write_features_onnx(self, target: str) -> None:
        from keras_transfer.backbones.onnx_graph import write_features_graph

        write_features_graph(self.encoder, self.pooling, target)

    def call(self, inputs):
        import tempfile

        import numpy as np
        import onnxruntime as ort

        from keras_transfer.backbones.onnx_graph import INPUT

        if self._session is None:
            with tempfile.TemporaryDirectory() as folder:
                self.write_features_onnx(f"{folder}/features.onnx")
                self._session = ort.InferenceSession(f"{folder}/features.onnx", providers=["CPUExecutionProvider"])
        pixels = np.asarray(ops.convert_to_numpy(inputs), np.float32)
        return ops.convert_to_tensor(self._session.run(None, {INPUT: pixels})[0])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.feature_dim)

    def get_config(self):
        return {**super().get_config(), "encoder": self.encoder, "feature_dim": self.feature_dim, "pooling": self.pooling}


def onnx_features_model(encoder: str, size: int, feature_dim: int, pooling: str = "avg") -> keras.Model:
    """The extractor of an ``onnx:`` backbone: pixels (size, size, 3) -> :class:`OnnxFeatures`."""
    inputs = keras.Input((size, size, 3), name="pixels")
    return keras.Model(inputs, OnnxFeatures(encoder, feature_dim, pooling, name="onnx_encoder")(inputs), name="features")
