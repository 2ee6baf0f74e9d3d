"""A backbone's Keras extractor, possibly not built yet: ``Deferred`` and ``resolve``."""

from __future__ import annotations


class Deferred:
    """A Keras extractor built on first use only: building one imports keras and torch, which a
    run whose features are cached and whose backbone is already compiled never needs.

    Args:
        build: Zero-argument function returning the Keras model.
        size: Its input side.
        feature_shape: Shape of one image's features (None: ask the built model).
    """

    def __init__(self, build, size: int, feature_shape: tuple[int, ...] | None = None):
        self._build, self.size, self.feature_shape, self._model = build, size, feature_shape, None

    def get(self):
        if self._model is None:
            self._model = self._build()
        return self._model


def resolve(extractor):
    """The Keras model of ``extractor`` (a model, or a :class:`Deferred` built now)."""
    return extractor.get() if isinstance(extractor, Deferred) else extractor


def input_side(extractor) -> int:
    return extractor.size if isinstance(extractor, Deferred) else int(extractor.input_shape[1])
