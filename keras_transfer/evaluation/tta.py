"""Test-time augmentation: class probabilities averaged over an image's cached views."""

from __future__ import annotations

import numpy as np

from keras_transfer.data.dataset import Split


def predict_views(probabilities, source, split: Split, tta_views: int = 0,
                  flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Head probabilities for ``split``, averaged over the original, [its mirror image,] and
    ``tta_views`` augmented views.

    Args:
        probabilities: features (N, D) -> probabilities (N, C), e.g. a head's predict.
        source: A ``FeatureSource`` (its views are extracted once and cached).
        split: The images.
        tta_views: Augmented views per image (0 = the original image only).
        flip: Average in the left-right mirror image too.

    Returns:
        (probabilities (M, C), indices (M,) into the split of the images that decoded).
    """
    features, indices = source.views(split, tta_views, flip)
    views, count = features.shape[:2]
    flat = features.reshape(views * count, *features.shape[2:])
    if count == 0:
        return np.zeros((0, 0), np.float32), indices
    return np.asarray(probabilities(flat)).reshape(views, count, -1).mean(axis=0), indices
