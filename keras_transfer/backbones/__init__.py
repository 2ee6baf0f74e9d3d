"""Backbone registry. Importing this package registers every built-in backbone."""

# Registration order is listing order: the bundled EfficientNet-Lite first, then keras.applications.
from keras_transfer.backbones import efficientnet_lite  # noqa: F401, I001  (registers entries)
from keras_transfer.backbones import applications  # noqa: F401  (registers entries)
from keras_transfer.backbones.registry import DEFAULT_BACKBONE, DEFAULT_ENSEMBLE, get_backbone, list_backbones, register_backbone
from keras_transfer.backbones.spec import BackboneSpec, Preprocessing

__all__ = ["BackboneSpec", "Preprocessing", "DEFAULT_BACKBONE", "DEFAULT_ENSEMBLE", "get_backbone", "list_backbones", "register_backbone"]
