"""Building the feature extractor, the head and the saved end-to-end classifier."""

from __future__ import annotations

import keras

from keras_transfer.backbones import heads
from keras_transfer.backbones import BackboneSpec
from keras_transfer.backbones.layers import normalization

POOL_LAYERS = {"avg": keras.layers.GlobalAveragePooling2D, "max": keras.layers.GlobalMaxPooling2D}


def build_extractor(spec: BackboneSpec, size: int, weights: str | None, pooling: str = "avg",
                    offline: bool = False, stages: int = 1) -> keras.Model:
    """uint8/float RGB (size, size, 3) -> normalisation -> frozen backbone(s) -> features.

    Args:
        spec: The backbone, or an ensemble of several (each member sees the same pixels).
        size: Input side in pixels.
        weights: ``"imagenet"``, a local weights file, or None (random).
        pooling: ``avg`` or ``max`` give (D,) vectors; ``spatial`` keeps the (h, w, D) map
            (one backbone, one stage).
        offline: Never touch the network for weights.
        stages: Pool the last feature map and the ends of the ``stages - 1`` stages before it
            (``spec.stages``) and concatenate them, every member alike; the layout is
            ``[member 1: last map, stage ends...] [member 2: ...]``.

    Each backbone stays one nested model named like it (Grad-CAM and fine-tuning look up its
    layers there); with several stages it has one output per pooled stage.
    """
    if spec.build_features is not None:  # a whole graph of its own (onnx:), normalisation and pooling inside
        return spec.build_features(size, pooling, stages)
    inputs = keras.Input((size, size, 3), name="pixels")
    maps = []
    for i, part in enumerate(spec.parts):
        backbone = part.build(size, weights, offline=offline)
        backbone.trainable = False
        if stages > 1:
            taps = [backbone.get_layer(name).output for name, _ in part.stages[:stages - 1]]
            backbone = keras.Model(backbone.input, [backbone.output, *taps], name=backbone.name)
        p = part.preprocessing
        x = normalization(p.mean, p.std, p.bgr, name="normalize" if i == 0 else f"normalize_{i}")(inputs)
        out = backbone(x, training=False)
        maps += out if isinstance(out, (list, tuple)) else [out]
    if pooling not in POOL_LAYERS:
        return keras.Model(inputs, maps[0], name="features")
    if len(maps) == 1:
        return keras.Model(inputs, POOL_LAYERS[pooling](name="pool")(maps[0]), name="features")
    pooled = [POOL_LAYERS[pooling](name=f"pool_{i}")(m) for i, m in enumerate(maps)]
    return keras.Model(inputs, keras.layers.Concatenate(name="pooled")(pooled), name="features")


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
