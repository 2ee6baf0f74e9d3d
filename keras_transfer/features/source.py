"""``FeatureSource``: the features of a split's views, from the run folder, the shared cache or the engine."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keras_transfer.base import log
from keras_transfer.data.augment import FLIP
from keras_transfer.data.dataset import Split
from keras_transfer.data.skipped import summarise
from keras_transfer.features.cache import FeatureCache
from keras_transfer.features.engine import FeatureEngine
from keras_transfer.features.executor import Executor, make_executor
from keras_transfer.features.extract import ViewMaker
from keras_transfer.features.extractor import input_side, resolve
from keras_transfer.features.runtime import RuntimeOptions
from keras_transfer.features.store import feature_key, load_features, save_features


def view_numbers(augmented: int = 0, flip: bool = False) -> list[int]:
    """The views a run uses: the original, its mirror image (``flip``), then ``augmented`` augmented ones."""
    return [0, *([FLIP] if flip else []), *range(1, augmented + 1)]



@dataclass
class FeatureSource:
    """Pooled backbone features of a split's views, saved beside the run and in the shared cache.

    A split's features are first looked up in ``store_dir`` (the run folder: same files, same
    backbone -> loaded in milliseconds), then per image in the shared content-addressed cache,
    and only the images and views missing from both go through the backbone.

    Attributes:
        extractor: Keras model, uint8 (S, S, 3) batch -> (B, D) features, or a
            :class:`Deferred` one (built only if the runtime must export it).
        identity: What defines the extractor (backbone, weights hash, size, pooling, preprocessing).
        store_dir: Run-local folder for the split feature files.
        resize_mode: stretch, pad or crop.
        options: Runtime, precision and batching.
        seed: Seed of the augmented views.
        cache: The shared cache (default: ``cache_dir("features")``).
        executor: Where cache misses are extracted: ``"local"`` (None too), ``"ray"`` (a local
            instance, or ``$RAY_ADDRESS``) or an executor object such as ``RayExecutor(address)``.
            Not part of any cache key: every executor gives the same features.
        failed: (image id, reason) of every image that could not be decoded.
        seconds: Time spent getting features, in total.
    """

    extractor: object
    identity: dict
    store_dir: Path
    resize_mode: str = "stretch"
    options: RuntimeOptions = RuntimeOptions()
    seed: int = 0
    cache: FeatureCache | None = None
    executor: str | Executor | None = None
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    _engine: FeatureEngine | None = field(default=None, repr=False)

    @property
    def model(self):
        """The Keras extractor (built now if it was deferred)."""
        return resolve(self.extractor)

    @property
    def size(self) -> int:
        return input_side(self.extractor)

    @property
    def engine(self) -> FeatureEngine:
        if self._engine is None:
            maker = ViewMaker(self.size, self.resize_mode, self.seed)
            self._engine = FeatureEngine(self.extractor, self.identity, maker, self.options,
                                         self.cache or FeatureCache(), executor=make_executor(self.executor))
        return self._engine

    def __call__(self, split: Split) -> tuple[np.ndarray, np.ndarray]:
        """(features (M, D), indices (M,) into the split of the images that decoded)."""
        features, indices = self.views(split, 0)
        return features[0], indices

    def views(self, split: Split, augmented: int, flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The original, [its mirror image,] and ``augmented`` augmented views of every image of ``split``.

        Returns:
            (features (1 + flip + augmented, M, D), indices (M,) of the images that decoded).
        """
        start = time.perf_counter()
        numbers = view_numbers(augmented, flip)
        count = len(numbers)
        engine = self.engine
        key = feature_key(split, {**engine.identity, "views": count, "seed": self.seed,
                                  "policy": engine.maker.policy.fingerprint(), "layout": 2,
                                  **({"flip": True} if flip else {})})
        # One view: <split>.npz holds (M, ...) like any plain feature file; K views: (K, M, ...).
        name = f"{split.name}.npz" if count == 1 else f"{split.name}-{count}views{'-flip' if flip else ''}.npz"
        saved = load_features(self.store_dir / name, key)
        if saved is None:
            features, indices = self._compute(split, numbers)
            save_features(self.store_dir / name, key, features[0] if count == 1 else features, indices)
        else:
            features, indices = (saved[0][None] if count == 1 else saved[0]), saved[1]
        self.seconds += time.perf_counter() - start
        return features, indices

    def view(self, split: Split, number: int, desc: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """View ``number`` (0: the original) of every image of ``split``, through the shared cache only.

        Returns:
            (features (M, D), indices (M,) of the images that decoded).
        """
        start = time.perf_counter()
        features, indices = self._compute(split, [number], desc=desc)
        self.seconds += time.perf_counter() - start
        return features[0], indices

    def _compute(self, split: Split, numbers: list[int], desc: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        count = len(numbers)
        out: np.ndarray | None = None
        have = np.zeros((count, len(split)), bool)

        def sink(position: int, rows: list[int], vector: np.ndarray) -> None:
            nonlocal out
            if out is None:
                out = np.zeros((count, len(split), *vector.shape), np.float32)
            out[position, rows] = vector
            have[position, rows] = True

        failures = self.engine.fill(split, numbers, sink, desc=desc or f"features {split.name}")
        if failures:
            ids = split.ids()
            log.warn(summarise([(ids[i], reason) for i, reason in failures], f"images of {split.name}",
                               "dataset.json of a train run (undecodable_files), or the rows predict writes"))
            self.failed += [f for f in ((ids[i], reason) for i, reason in failures) if f not in self.failed]
        indices = np.flatnonzero(have.all(axis=0))
        if out is None:
            return np.zeros((count, 0, *self.engine.feature_shape), np.float32), indices
        return (out if len(indices) == len(split) else out[:, indices]), indices
