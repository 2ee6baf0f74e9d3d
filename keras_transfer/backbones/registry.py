"""The backbone registry: ``@register_backbone`` on a function returning a BackboneSpec."""

from __future__ import annotations

from collections.abc import Callable

from keras_transfer.backbones.spec import BackboneSpec
from keras_transfer.errors import unknown_choice

_FACTORIES: dict[str, Callable[[], BackboneSpec]] = {}
DEFAULT_BACKBONE = "efficientnet_lite0"


def register_backbone(factory: Callable[[], BackboneSpec]) -> Callable[[], BackboneSpec]:
    """Registers a spec factory under its function name.

    Example:
        >>> @register_backbone
        ... def my_net() -> BackboneSpec: ...
    """
    _FACTORIES[factory.__name__] = factory
    return factory


def get_backbone(name: str) -> BackboneSpec:
    """Returns the spec registered under ``name`` (case-insensitive, '-' same as '_')."""
    key = name.lower().replace("-", "_")
    if key not in _FACTORIES:
        raise unknown_choice("backbone", name, _FACTORIES)
    return _FACTORIES[key]()


def list_backbones() -> list[str]:
    """Names of all registered backbones, in registration order."""
    return list(_FACTORIES)
