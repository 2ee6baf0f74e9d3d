"""The backbone registry: ``@register_backbone`` on a function returning a BackboneSpec."""

from __future__ import annotations

from collections.abc import Callable

from keras_transfer.backbones.spec import BackboneSpec
from keras_transfer.base.errors import ConfigError, unknown_choice

_FACTORIES: dict[str, Callable[[], BackboneSpec]] = {}
DEFAULT_BACKBONE = "efficientnet_lite0"  # one backbone: fine-tuning, spatial features, ImageNet classes
# the frozen, pooled default: the best accuracy per second of the variants measured by
# benchmarks/feature_variants (on CIFAR-10 training images no reported figure comes from)
DEFAULT_ENSEMBLE = "efficientnet_lite0+efficientnet_lite2"


def register_backbone(factory: Callable[[], BackboneSpec]) -> Callable[[], BackboneSpec]:
    """Registers a spec factory under its function name.

    Example:
        >>> @register_backbone
        ... def my_net() -> BackboneSpec: ...
    """
    _FACTORIES[factory.__name__] = factory
    return factory


def _key(name: str) -> str:
    key = name.strip().lower().replace("-", "_")
    if key not in _FACTORIES and f"efficientnet_{key}" in _FACTORIES:  # lite0 for efficientnet_lite0
        key = f"efficientnet_{key}"
    if key not in _FACTORIES:
        raise unknown_choice("backbone", name, _FACTORIES)
    return key


def get_backbone(name: str) -> BackboneSpec:
    """Returns the spec registered under ``name`` (case-insensitive, '-' same as '_', ``lite0``
    for ``efficientnet_lite0``); ``a+b`` is the ensemble of a and b (:func:`ensemble_spec`);
    ``onnx:PATH`` is an ONNX image encoder (``onnx_encoder``), ``hub:PRESET`` a KerasHub preset (``hub``),
    ``timm:NAME`` a timm model (``timm_models``)."""
    if name.startswith("onnx:"):
        from keras_transfer.backbones.onnx_encoder import onnx_spec

        return onnx_spec(name)
    if name.startswith("hub:"):
        from keras_transfer.backbones.hub import hub_spec

        return hub_spec(name)
    if name.startswith("timm:"):
        from keras_transfer.backbones.timm_models import timm_spec

        return timm_spec(name)
    if "+" in name:
        return ensemble_spec([get_backbone(part) for part in name.split("+")])
    return _FACTORIES[_key(name)]()


def ensemble_spec(members: list[BackboneSpec]) -> BackboneSpec:
    """Several backbones as one: each sees the same images at the largest member's side, and
    their pooled features are concatenated (``model.build_extractor``), so the head, the
    cache, the exported graph and the predictor treat the ensemble like one backbone.
    """
    names = [m.name for m in members]
    if len(set(names)) != len(names) or len(members) < 2:
        raise ConfigError("an ensemble needs two or more different backbones", "e.g. lite0+lite2", "+".join(names))
    first = members[0]

    def weights_identity(weights):  # each member's ImageNet weights (TrainConfig refuses a weights file)
        return "+".join(m.weights_identity(weights) for m in members)

    def build(*_, **__):
        raise ConfigError(f"{'+'.join(names)} is an ensemble: it has no single feature map to build",
                          "a single backbone", hint="use the ensemble with --strategy bottleneck or frozen")

    return BackboneSpec(
        name="+".join(names), input_size=max(m.input_size for m in members),
        feature_dim=sum(m.feature_dim for m in members), preprocessing=first.preprocessing, build=build,
        weights_identity=weights_identity, gradcam_layer=first.gradcam_layer,
        offline_weights=lambda: all(m.offline_weights() for m in members),
        min_input_size=max(m.min_input_size for m in members), members=tuple(members),
        default_stages=min(m.default_stages for m in members),
        description="ensemble of " + ", ".join(names) + " (features concatenated)")


def list_backbones() -> list[str]:
    """Names of all registered backbones, in registration order."""
    return list(_FACTORIES)
