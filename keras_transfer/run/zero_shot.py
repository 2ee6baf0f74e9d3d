"""Zero-shot ImageNet predictions: a pretrained backbone's own 1000-class head, no training."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from keras_transfer.backbones import DEFAULT_BACKBONE, get_backbone
from keras_transfer.backbones.imagenet_labels import imagenet_classes
from keras_transfer.base import log
from keras_transfer.base.errors import ConfigError
from keras_transfer.data.images import read_batch
from keras_transfer.data.layout import collect_images
from keras_transfer.backbones.layers import normalization


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
    results = _predict_images(model, inputs, [c["name"] for c in classes], int(model.input_shape[1]),
                             resize_mode, top_k)
    for result in results:
        for prediction in result.get("predictions", []):
            prediction["wnid"] = classes[prediction["index"]]["wnid"]
    return results


def _predict_images(model, inputs: list[str | Path], class_names: list[str], size: int,
                    resize_mode: str = "stretch", top_k: int = 3, batch_size: int = 32) -> list[dict]:
    """Top-k predictions of ``model`` (uint8 (size, size, 3) batch -> class probabilities).

    Args:
        model: A Keras model taking uint8 RGB images resized to ``size``.
        inputs: Image files and folders (searched recursively).
        class_names: The name of each output class.
        size: Side the images are resized to (``resize_mode``: stretch, pad or crop).
        top_k: Classes listed per image.
        batch_size: Images per inference call.
    """
    paths, problems = collect_images(inputs)
    results = [{"path": p, "error": reason} for p, reason in problems]
    for start in log.progress(range(0, len(paths), batch_size), desc="predict", unit="batch"):
        ok, batch, failures = read_batch(paths[start:start + batch_size], size, resize_mode)
        results += [{"path": path, "error": reason} for path, reason in failures]
        if batch:
            probabilities = np.asarray(model.predict_on_batch(np.stack(batch)))
            results += [_top_k(str(p), row, class_names, top_k) for p, row in zip(ok, np.asarray(probabilities))]
    return results


def _top_k(path: str, probabilities: np.ndarray, names: list[str], k: int) -> dict:
    order = np.argsort(-probabilities)[:k]
    return {"path": path, "predictions": [{"label": names[i], "index": int(i), "probability": float(probabilities[i])}
                                          for i in order]}
