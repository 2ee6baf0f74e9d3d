"""Dataset exploration data: class counts, sample images, colour densities and image sizes.

Colours and sizes are measured on a stratified sample of images (``sample``, default 200), so
exploring a large dataset stays fast: sizes come from the file headers, colours from images
decoded at reduced scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d

from keras_transfer.base import log
from keras_transfer.data.dataset import Dataset, Split, stratified_sample
from keras_transfer.data.images import open_image, resize

THUMBNAIL = 64
EXIF_ORIENTATION, ROTATED = 0x0112, (5, 6, 7, 8)


@dataclass(frozen=True)
class ImageRef:
    """One image of a dataset: its split, position in the split and class index."""

    split: Split
    index: int
    label: int

    @property
    def id(self) -> str:
        return f"{self.split.name}[{self.index}]" if self.split.is_array else str(self.split.items[self.index])

    def read(self, min_size: int | None = None) -> np.ndarray:
        return self.split.image(self.index, min_size)


def class_counts(dataset: Dataset) -> pd.DataFrame:
    """Images per class (rows) and split (columns), with a ``total`` column."""
    counts = {name: np.bincount(split.labels, minlength=len(dataset.class_names))
              for name, split in dataset.splits.items()}
    frame = pd.DataFrame(counts, index=pd.Index(dataset.class_names, name="class"))
    frame["total"] = frame.sum(axis=1)
    return frame


def sample_refs(dataset: Dataset, n: int, seed: int = 0, splits: tuple[str, ...] | None = None) -> list[ImageRef]:
    """About ``n`` images spread evenly over the classes, drawn from ``splits`` (default: all)."""
    pool = [(split, i) for name, split in dataset.splits.items() if splits is None or name in splits
            for i in range(len(split))]
    labels = np.array([split.labels[i] for split, i in pool], dtype=np.int64)
    return [ImageRef(pool[k][0], pool[k][1], int(labels[k])) for k in stratified_sample(labels, n, seed)]


def _header_size(ref: ImageRef) -> tuple[int, int]:
    """(width, height) as displayed, from the file header (EXIF rotation honoured) or the array."""
    if ref.split.is_array:
        height, width = ref.split.items[ref.index].shape[:2]
        return int(width), int(height)
    with open_image(ref.split.items[ref.index]) as image:
        width, height = image.size
        rotated = image.getexif().get(EXIF_ORIENTATION) in ROTATED
    return (height, width) if rotated else (width, height)


def image_sizes(dataset: Dataset, sample: int = 200, seed: int = 0) -> pd.DataFrame:
    """Width and height of a stratified sample of images: columns ``id``, ``class``, ``width``, ``height``."""
    rows = []
    for ref in sample_refs(dataset, sample, seed):
        try:
            width, height = _header_size(ref)
        except (OSError, ValueError):
            continue
        rows.append({"id": log.printable(str(ref.id)), "class": log.printable(dataset.class_names[ref.label]),
                     "width": width, "height": height})  # pandas' arrow strings refuse non-UTF-8 names
    return pd.DataFrame(rows, columns=["id", "class", "width", "height"])


def color_densities(dataset: Dataset, sample: int = 200, seed: int = 0, bandwidth: float = 3.0) -> dict[str, np.ndarray]:
    """Per-class densities of the R, G and B values (0..255) of a stratified sample of images.

    Each image is reduced to a 64x64 thumbnail; the pooled values of a class are binned into
    256 levels and smoothed with a Gaussian kernel of ``bandwidth`` levels (a binned Gaussian KDE).

    Returns:
        Class name -> array (3, 256) of densities (each row sums to 1); classes with no readable
        sampled image are left out.
    """
    histograms: dict[int, np.ndarray] = {}
    for ref in sample_refs(dataset, sample, seed):
        try:
            pixels = resize(ref.read(THUMBNAIL), THUMBNAIL).reshape(-1, 3)
        except (OSError, ValueError):
            continue
        counts = np.stack([np.bincount(pixels[:, c], minlength=256) for c in range(3)])
        histograms[ref.label] = histograms.get(ref.label, 0) + counts
    densities = {}
    for label, counts in sorted(histograms.items()):
        smooth = gaussian_filter1d(counts.astype(np.float64), bandwidth, axis=1, mode="reflect")
        densities[dataset.class_names[label]] = smooth / smooth.sum(axis=1, keepdims=True)
    return densities


def sample_grid(dataset: Dataset, per_class: int = 6, seed: int = 0, max_classes: int = 12) -> dict[str, list[np.ndarray]]:
    """Up to ``per_class`` random training images (as thumbnails) for each of the first ``max_classes`` classes."""
    names = dataset.class_names[:max_classes]
    refs = sample_refs(dataset, per_class * len(dataset.class_names), seed, splits=("train",))
    grid: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for ref in refs:
        name = dataset.class_names[ref.label]
        if name in grid and (picture := thumbnail_of(ref.split, ref.index)) is not None:
            grid[name].append(picture)
    return grid


def thumbnail_of(split: Split, index: int, size: int = 160) -> np.ndarray | None:
    """A square centre-cropped thumbnail of one image for galleries, or None if it cannot be read."""
    try:
        return resize(split.image(index, size), size, "crop")
    except (OSError, ValueError):
        return None
