"""The raw-pixel baseline: a logistic regression on downscaled pixels, fit and scored on the
same images as the run. It tells a user whether transfer learning helped at all.

The pixels go through the same feature engine and content-addressed cache as backbone
features (a "runtime" that flattens 16x16 RGB images), so a second run costs milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_transfer.data.dataset import Split
from keras_transfer.features import Deferred, FeatureSource
from keras_transfer.features.runtime import Runtime
from keras_transfer.strategies.solver import fit_linear_head

PIXELS = 16


def pixel_source(store_dir: Path, resize_mode: str = "stretch", size: int = PIXELS) -> FeatureSource:
    """Features = the image resized to ``size`` x ``size`` RGB, flattened and scaled to [0, 1]."""
    source = FeatureSource(Deferred(lambda: None, size, (size * size * 3,)),
                           {"backbone": "raw-pixels", "size": size, "version": 1}, store_dir, resize_mode)
    source.engine.runtime = Runtime("pixels", lambda images: images.reshape(len(images), -1) / np.float32(255), 256)
    return source


def pixel_baseline(fit_on: list[Split], evaluate_on: Split, n_classes: int, store_dir: Path,
                   resize_mode: str = "stretch", seed: int = 0) -> dict:
    """Accuracy on ``evaluate_on`` of a softmax regression on raw pixels fit on ``fit_on``
    (L2 strength by cross-validation inside ``fit_on``, as for the default head)."""
    source = pixel_source(store_dir, resize_mode)
    parts = [source(split) for split in fit_on]
    x = np.concatenate([features for features, _ in parts])
    y = np.concatenate([split.labels[indices] for split, (_, indices) in zip(fit_on, parts)])
    head = fit_linear_head(x[None], y, n_classes, seed=seed).head
    features, indices = source(evaluate_on)
    accuracy = float((head.predict(features).argmax(1) == evaluate_on.labels[indices]).mean()) if len(indices) else 0.0
    return {"method": f"logistic regression on {PIXELS}x{PIXELS} RGB pixels", "accuracy": accuracy,
            "evaluated_on": evaluate_on.name, "n": int(len(indices))}
