"""Building the feature extractor, the head and the saved end-to-end classifier."""

from __future__ import annotations

import keras

from keras_transfer import heads
from keras_transfer.backbones import BackboneSpec
from keras_transfer.layers import normalization

POOL_LAYERS = {"avg": keras.layers.GlobalAveragePooling2D, "max": keras.layers.GlobalMaxPooling2D}


def build_extractor(spec: BackboneSpec, size: int, weights: str | None, pooling: str = "avg",
                    offline: bool = False) -> keras.Model:
    """uint8/float RGB (size, size, 3) -> normalisation -> frozen backbone -> features.

    Args:
        spec: The backbone.
        size: Input side in pixels.
        weights: ``"imagenet"``, a local weights file, or None (random).
        pooling: ``avg`` or ``max`` give (D,) vectors; ``spatial`` keeps the (h, w, D) map.
        offline: Never touch the network for weights.
    """
    backbone = spec.build(size, weights, offline=offline)
    backbone.trainable = False
    inputs = keras.Input((size, size, 3), name="pixels")
    p = spec.preprocessing
    x = normalization(p.mean, p.std, p.bgr)(inputs)
    x = backbone(x, training=False)
    if pooling in POOL_LAYERS:
        x = POOL_LAYERS[pooling](name="pool")(x)
    return keras.Model(inputs, x, name="features")


def build_head(feature_shape: int | tuple[int, ...], num_classes: int, hidden_units: tuple[int, ...] = (),
               dropout: float = 0.2, seed: int = 0) -> keras.Model:
    """The default ``linear`` head: [GAP for maps] -> [Dense(relu) + Dropout]* -> Dropout -> softmax."""
    shape = (feature_shape,) if isinstance(feature_shape, int) else tuple(feature_shape)
    return heads.build_head(shape, num_classes, "linear", heads.HeadOptions(tuple(hidden_units), dropout, seed))


def build_classifier(extractor: keras.Model, head: keras.Model, resize_mode: str = "stretch") -> keras.Model:
    """Raw uint8 images of any size -> resize -> extractor -> head, as one savable model."""
    size = extractor.input_shape[1]
    inputs = keras.Input((None, None, 3), dtype="uint8", name="image")
    x = keras.layers.Resizing(size, size, interpolation="bilinear", antialias=True,
                              crop_to_aspect_ratio=resize_mode == "crop",
                              pad_to_aspect_ratio=resize_mode == "pad", name="resize")(inputs)
    return keras.Model(inputs, head(extractor(x)), name="classifier")


def weights_digest(model: keras.Model) -> str:
    """A content hash of a model's weights (names a fine-tuned or scratch extractor in caches)."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight.value)).tobytes())
    return f"sha256:{digest.hexdigest()[:16]}"
