"""Drawing class-activation maps over the images they explain."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from PIL import Image


def upsample(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a (h, w) map in [0, 1] to ``size`` = (height, width)."""
    image = Image.fromarray(np.asarray(heatmap, dtype=np.float32), mode="F")
    return np.asarray(image.resize((size[1], size[0]), Image.BILINEAR))


def peak(heatmap: np.ndarray, size: tuple[int, int]) -> tuple[int, int]:
    """(row, column) of the hottest pixel of the map upsampled to ``size`` = (height, width)."""
    big = upsample(heatmap, size)
    row, column = np.unravel_index(int(np.argmax(big)), big.shape)
    return int(row), int(column)


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45, cmap: str = "jet") -> np.ndarray:
    """Blends a colour-mapped heatmap over an RGB uint8 image; returns RGB uint8 of the image's size.

    Example:
        >>> overlay(np.zeros((8, 8, 3), np.uint8), np.eye(2)).shape
        (8, 8, 3)
    """
    heat = np.clip(upsample(heatmap, image.shape[:2]), 0.0, 1.0)
    colours = colormaps[cmap](heat)[..., :3] * 255.0
    blended = (1.0 - alpha) * image.astype(np.float32) + alpha * colours
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)
