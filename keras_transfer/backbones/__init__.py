"""Backbone registry. Importing this package registers every built-in backbone."""

from keras_transfer.backbones import efficientnet_lite  # noqa: F401  (registers entries)
from keras_transfer.backbones.registry import DEFAULT_BACKBONE, get_backbone, list_backbones, register_backbone
from keras_transfer.backbones.spec import BackboneSpec, Preprocessing

__all__ = ["BackboneSpec", "Preprocessing", "DEFAULT_BACKBONE", "get_backbone", "list_backbones", "register_backbone"]
