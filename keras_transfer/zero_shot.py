"""Zero-shot ImageNet predictions: a pretrained backbone's own 1000-class head, no training."""

from __future__ import annotations

from pathlib import Path

import keras

from keras_transfer.api import predict_images
from keras_transfer.backbones import DEFAULT_BACKBONE, get_backbone
from keras_transfer.backbones.imagenet_labels import imagenet_classes
from keras_transfer.errors import ConfigError
from keras_transfer.layers import normalization


def imagenet_model(backbone: str = DEFAULT_BACKBONE, weights: str | None = "imagenet",
                   offline: bool = False) -> keras.Model:
    """uint8 RGB (S, S, 3) -> the backbone's preprocessing -> ImageNet head -> 1000 probabilities.

    Args:
        backbone: A registered backbone with an ImageNet head.
        weights: ``"imagenet"`` (bundled for EfficientNet-Lite, keras' download otherwise),
            a local weights file *with* the top, or None (random; for tests).
        offline: Never touch the network.

    Raises:
        ConfigError: The backbone has no ImageNet head.
        WeightsError: The weights are not available.
    """
    spec = get_backbone(backbone)
    if spec.build_imagenet is None:
        raise ConfigError(f"backbone {spec.name} has no ImageNet classifier head",
                          hint="pick one listed by `keras-transfer backbones`")
    top = spec.build_imagenet(weights, offline=offline)
    size = int(top.input_shape[1])
    inputs = keras.Input((size, size, 3), name="pixels")
    p = spec.preprocessing
    x = normalization(p.mean, p.std, p.bgr)(inputs)
    outputs = keras.layers.Softmax(name="probabilities")(top(x, training=False))
    return keras.Model(inputs, outputs, name=f"{spec.name}_imagenet")


def predict_imagenet(inputs: list[str | Path], backbone: str = DEFAULT_BACKBONE, weights: str | None = "imagenet",
                     top_k: int = 5, offline: bool = False, resize_mode: str = "stretch") -> list[dict]:
    """Top-k ImageNet classes of image files and folders, from a pretrained backbone.

    Returns:
        One dict per image: ``{"path", "predictions": [{"label", "index", "wnid", "probability"}...]}``
        (``label`` is the short class name), or ``{"path", "error"}`` for unreadable inputs.

    Example:
        >>> predict_imagenet(["grace_hopper.jpg"], top_k=1)[0]["predictions"][0]["label"]  # doctest: +SKIP
        'military uniform'
    """
    model = imagenet_model(backbone, weights, offline)
    classes = imagenet_classes()
    results = predict_images(model, inputs, [c["name"] for c in classes], int(model.input_shape[1]),
                             resize_mode, top_k)
    for result in results:
        for prediction in result.get("predictions", []):
            prediction["wnid"] = classes[prediction["index"]]["wnid"]
    return results
