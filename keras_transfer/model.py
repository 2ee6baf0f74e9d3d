"""Building the feature extractor, the head and the saved end-to-end classifier."""

from __future__ import annotations

import keras

from keras_transfer.backbones import BackboneSpec
from keras_transfer.layers import ImageNormalization


def build_extractor(spec: BackboneSpec, size: int, weights: str | None, pooling: str = "avg") -> keras.Model:
    """uint8/float RGB (size, size, 3) -> normalisation -> frozen backbone -> pooled features."""
    backbone = spec.build(size, weights)
    backbone.trainable = False
    inputs = keras.Input((size, size, 3), name="pixels")
    p = spec.preprocessing
    x = ImageNormalization(p.mean, p.std, p.bgr, name="normalize")(inputs)
    x = backbone(x, training=False)
    pool = keras.layers.GlobalAveragePooling2D if pooling == "avg" else keras.layers.GlobalMaxPooling2D
    return keras.Model(inputs, pool(name="pool")(x), name="features")


def build_head(feature_dim: int, num_classes: int, hidden_units: tuple[int, ...] = (),
               dropout: float = 0.2, seed: int = 0) -> keras.Model:
    """Features -> [Dense(relu) + Dropout]* -> Dropout -> Dense(softmax)."""
    inputs = keras.Input((feature_dim,), name="features")
    x = inputs
    for i, units in enumerate(hidden_units):
        x = keras.layers.Dropout(dropout, seed=seed, name=f"dropout_{i}")(x)
        x = keras.layers.Dense(units, activation="relu", name=f"hidden_{i}")(x)
    x = keras.layers.Dropout(dropout, seed=seed, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="head")


def build_classifier(extractor: keras.Model, head: keras.Model, resize_mode: str = "stretch") -> keras.Model:
    """Raw uint8 images of any size -> resize -> extractor -> head, as one savable model."""
    size = extractor.input_shape[1]
    inputs = keras.Input((None, None, 3), dtype="uint8", name="image")
    x = keras.layers.Resizing(size, size, interpolation="bilinear", antialias=True,
                              crop_to_aspect_ratio=resize_mode == "crop",
                              pad_to_aspect_ratio=resize_mode == "pad", name="resize")(inputs)
    return keras.Model(inputs, head(extractor(x)), name="classifier")
