"""Helpers for the feature-engine tests: a tiny deterministic extractor and an engine around it.

Run as a script (``python feature_helpers.py CACHE_ROOT FILE...``) it extracts the files slowly,
one small batch at a time, so a test can SIGKILL it mid-extraction.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import keras
import numpy as np

import keras_transfer  # noqa: F401  (selects the torch backend)
from keras_transfer.data.dataset import Split
from keras_transfer.features import FeatureCache, FeatureEngine, RuntimeOptions
from keras_transfer.features.extract import ViewMaker
from keras_transfer.features.runtime import Runtime
from keras_transfer.backbones.layers import ImageNormalization

TINY_IDENTITY = {"backbone": "tiny", "weights": "seeded", "size": 32, "pooling": "avg",
                 "preprocessing": {"mean": [127.0] * 3, "std": [128.0] * 3, "bgr": False}}


def tiny_extractor(size: int = 32) -> keras.Model:
    """Normalisation -> one seeded conv -> global average pooling: 8 features, identical in every process."""
    inputs = keras.Input((size, size, 3), name="pixels")
    x = ImageNormalization((127.0,) * 3, (128.0,) * 3)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu",
                            kernel_initializer=keras.initializers.GlorotUniform(seed=1))(x)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name="features")


def file_split(paths, name: str = "train") -> Split:
    return Split(name, [Path(p) for p in paths], np.zeros(len(paths), np.int64))


def make_engine(root: Path, extractor=None, identity: dict | None = None, runtime: str = "keras",
                maker: ViewMaker | None = None) -> FeatureEngine:
    """An engine over a cache in ``root`` (Keras runtime by default: no export needed)."""
    return FeatureEngine(extractor or tiny_extractor(), identity or TINY_IDENTITY, maker or ViewMaker(32),
                         RuntimeOptions(runtime), FeatureCache(root))


def collect(engine: FeatureEngine, split: Split, views=(0,)) -> tuple[np.ndarray, list]:
    """All views of ``split`` as (V, N, D) (NaN for failures), and the failures."""
    out: dict = {}

    def sink(position, rows, vector):
        out.setdefault(position, {}).update({int(r): vector.copy() for r in rows})

    failures = engine.fill(split, list(views), sink)
    dim = len(next(iter(next(iter(out.values())).values()))) if out else 0
    array = np.full((len(views), len(split), dim), np.nan, np.float32)
    for position, rows in out.items():
        for row, vector in rows.items():
            array[position, row] = vector
    return array, failures


def slow_runtime(extractor, delay: float, batch_size: int = 4) -> Runtime:
    def infer(images):
        time.sleep(delay)
        return np.asarray(extractor.predict_on_batch(images))

    return Runtime("slow", infer, batch_size)


if __name__ == "__main__":
    engine = make_engine(Path(sys.argv[1]))
    engine.runtime = slow_runtime(engine.extractor, delay=0.3)
    collect(engine, file_split(sys.argv[2:]))
