"""The backbone spec: everything the rest of the library needs to know about a backbone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Weights argument accepted by every builder: "imagenet" (bundled or downloaded),
# a path to a local weights file, or None for random initialisation.
Weights = str | None


@dataclass(frozen=True)
class Preprocessing:
    """Per-channel normalisation applied to RGB pixels in [0, 255]: (x[..., c] - mean[c]) / std[c].

    ``bgr=True`` flips RGB to BGR first (Caffe-style VGG/ResNet weights).
    """

    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    bgr: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std), "bgr": self.bgr}


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone.

    Attributes:
        name: Registry key, e.g. ``"efficientnet_lite0"``.
        input_size: Native square input size in pixels.
        feature_dim: Channels of the feature map (= pooled feature size).
        preprocessing: Normalisation the weights were trained with.
        build: ``build(input_size, weights) -> keras.Model`` mapping normalised float images
            ``(N, S, S, 3)`` to the last feature map ``(N, h, w, feature_dim)``.
        weights_identity: ``weights_identity(weights) -> str``: a name + content hash that
            identifies the weights, used in cache keys.
        gradcam_layer: Name of the layer to explain with Grad-CAM inside the built model.
        finetune_groups: Blocks from input to output, each a tuple of layer-name prefixes,
            so ``--unfreeze N`` unfreezes the last N groups.
        offline_weights: ``offline_weights() -> bool``: ImageNet weights are available
            without the network right now.
        min_input_size: Smallest input size the architecture accepts.
    """

    name: str
    input_size: int
    feature_dim: int
    preprocessing: Preprocessing
    build: Callable[[int, Weights], Any]
    weights_identity: Callable[[Weights], str]
    gradcam_layer: str
    finetune_groups: tuple[tuple[str, ...], ...] = ()
    offline_weights: Callable[[], bool] = field(default=lambda: False)
    min_input_size: int = 32
    description: str = ""
