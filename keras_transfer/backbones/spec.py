"""The backbone spec: everything the rest of the library needs to know about a backbone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Weights argument accepted by every builder: "imagenet" (bundled or keras' download),
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
        build: ``build(input_size, weights, offline=False) -> keras.Model`` mapping normalised
            float images ``(N, S, S, 3)`` to the last feature map ``(N, h, w, feature_dim)``.
            ``offline=True`` (or ``KERAS_TRANSFER_OFFLINE=1``) must never touch the network.
        weights_identity: ``weights_identity(weights) -> str``: a name + content hash that
            identifies the weights, used in cache keys.
        gradcam_layer: Name of the layer to explain with Grad-CAM inside the built model.
        finetune_groups: Blocks from input to output, each a tuple of layer-name prefixes,
            so ``--unfreeze N`` unfreezes the last N groups; see :meth:`layer_groups`.
        offline_weights: ``offline_weights() -> bool``: ImageNet weights are available
            without the network right now.
        min_input_size: Smallest input size the architecture accepts.
        build_imagenet: ``build_imagenet(weights, offline=False) -> keras.Model``: the
            ImageNet classifier (include_top) at the native size, normalised images to 1000
            logits; None when the backbone has no ImageNet head.
        stages: Ends of the stages before the last feature map, last first, as (layer name,
            channels): ``--stages N`` pools the last map and the first N - 1 of these, concatenated.
        default_stages: Stages pooled by default (measured: ``benchmarks/feature_variants``).
        members: The backbones of an ensemble (``lite0+lite2``); empty for a single backbone.
        build_features: For a backbone that is not a Keras feature map (``onnx:``):
            ``build_features(size, pooling, stages) -> keras.Model``, the whole extractor,
            pixels in [0, 255] to pooled features, normalisation inside.
        license: The weights' licence, as their publisher states it.
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
    build_imagenet: Callable[..., Any] | None = None
    stages: tuple[tuple[str, int], ...] = ()
    default_stages: int = 1
    members: tuple[BackboneSpec, ...] = ()
    build_features: Callable[..., Any] | None = None
    license: str = ""

    @property
    def parts(self) -> tuple[BackboneSpec, ...]:
        """The backbones features come from: the members of an ensemble, else this one."""
        return self.members or (self,)

    @property
    def max_stages(self) -> int:
        return 1 + min(len(part.stages) for part in self.parts)

    def pooled_dim(self, stages: int = 1) -> int:
        """Length of the pooled feature vector with ``stages`` stages of every part."""
        return sum(part.feature_dim + sum(c for _, c in part.stages[:stages - 1]) for part in self.parts)

    def layer_groups(self, model) -> list[list[str]]:
        """The names of ``model``'s layers in each of :attr:`finetune_groups`, input to output.

        A layer joins the group holding its longest matching prefix. A layer matching none
        (keras' auto-named layers such as ``conv2d_7``) joins the group of the next layer that
        matches, i.e. the block it feeds; unmatched layers at the end join the last group.
        Input layers belong to no group.
        """
        from keras.layers import InputLayer

        groups: list[list[str]] = [[] for _ in self.finetune_groups]
        pending: list[str] = []
        for layer in model.layers:
            if isinstance(layer, InputLayer):
                continue
            matches = [(len(p), g) for g, prefixes in enumerate(self.finetune_groups)
                       for p in prefixes if layer.name.startswith(p)]
            pending.append(layer.name)
            if matches:
                groups[max(matches)[1]] += pending
                pending = []
        if groups:
            groups[-1] += pending
        return groups
