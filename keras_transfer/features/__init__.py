"""Feature extraction through a frozen backbone, with on-disk reuse."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keras_transfer import log
from keras_transfer.data.dataset import Split
from keras_transfer.features.extract import extract_features
from keras_transfer.features.runtime import make_batch_fn
from keras_transfer.features.store import feature_key, load_features, save_features


@dataclass
class FeatureSource:
    """Pooled backbone features for a split, extracted once and saved under ``store_dir``.

    Attributes:
        extractor: Keras model, uint8 (S, S, 3) batch -> (B, D) features.
        identity: Everything that changes the features (backbone, weights hash, size, ...).
        store_dir: Folder for the saved feature files.
        resize_mode: stretch, pad or crop.
        batch_size: Images per inference call.
        failed: (image id, reason) of every image that could not be decoded.
    """

    extractor: object
    identity: dict
    store_dir: Path
    resize_mode: str = "stretch"
    batch_size: int = 32
    runtime: str = "onnx"
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    _batch_fn: object = field(default=None, repr=False)

    @property
    def size(self) -> int:
        return int(self.extractor.input_shape[1])

    def __call__(self, split: Split) -> tuple[np.ndarray, np.ndarray]:
        """(features (M, D), indices (M,) into the split of the images that decoded)."""
        import time

        start = time.perf_counter()
        key = feature_key(split, self.identity)
        path = self.store_dir / f"{split.name}.npz"
        saved = load_features(path, key)
        if saved is None:
            if self._batch_fn is None:
                self._batch_fn = make_batch_fn(self.extractor, self.identity, self.runtime)
            features, indices, failed = extract_features(
                split, self._batch_fn, self.size, self.resize_mode,
                self.batch_size, desc=f"features {split.name}")
            if failed:
                listing = "\n  ".join(f"{i}: {r}" for i, r in failed)
                log.warn(f"skipped {len(failed)} image(s) of {split.name} that could not be decoded:\n  {listing}")
                self.failed += failed
            save_features(path, key, features, indices)
            saved = features, indices
        self.seconds += time.perf_counter() - start
        return saved
