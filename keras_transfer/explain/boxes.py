"""Object boxes from class-activation maps: ``localize`` and ``explain --boxes``.

For each of an image's top classes (the run's own answer, ``RunModel.predict_pixels``), the class's
CAM or Grad-CAM map is upsampled to the model input, thresholded at a share of its peak, and cut
into connected components (``scipy.ndimage.label``); each component's bounding box is one box,
scored by the class probability times the component's share of the map's mass above the
threshold. Boxes are mapped back to pixel coordinates of the original image through the run's
resize mode (``stretch``, ``pad``: the padding removed, ``crop``: the centre square's offset).
``crops=True`` then classifies each box's crop through the run, as the KTH-animals tutorial
proposes, and keeps the boxes whose crop the run gives the same class.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from keras_transfer.base.errors import ConfigError
from keras_transfer.data.images import read_image, resize
from keras_transfer.explain.overlay import upsample

METHODS = ("gradcam", "cam")
MIN_AREA = 0.005  # components smaller than this share of the image are noise, not objects


@dataclass(frozen=True)
class Box:
    """One box in pixel coordinates of the original image: ``x0 <= x < x1``, ``y0 <= y < y1``.

    Attributes:
        label: The class whose map gave the box.
        score: Class probability x the component's share of the map's mass above the threshold.
        crop_label / crop_probability: What the run answers for the box's crop (``crops=True``).
    """

    label: str
    score: float
    x0: int
    y0: int
    x1: int
    y1: int
    crop_label: str | None = None
    crop_probability: float | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)

    def iou(self, other: tuple[int, int, int, int]) -> float:
        """Intersection over union with a box (x0, y0, x1, y1) of the same image."""
        ix = max(0, min(self.x1, other[2]) - max(self.x0, other[0]))
        iy = max(0, min(self.y1, other[3]) - max(self.y0, other[1]))
        union = (self.x1 - self.x0) * (self.y1 - self.y0) + (other[2] - other[0]) * (other[3] - other[1]) - ix * iy
        return ix * iy / union if union > 0 else 0.0


@dataclass(frozen=True)
class Localization:
    """The boxes of one image (best first), its size, the run's top classes and each map's peak (x, y)."""

    path: str
    width: int
    height: int
    method: str
    boxes: list[Box]
    top: list[dict]
    peaks: dict[str, tuple[int, int]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"path": self.path, "width": self.width, "height": self.height, "method": self.method,
                "top": self.top, "peaks": {k: list(v) for k, v in self.peaks.items()},
                "boxes": [b.as_dict() for b in self.boxes], "files": self.files}


def check_options(method: str, threshold: float, top_k: int) -> None:
    if method not in METHODS:
        raise ConfigError(f"unknown map method {method!r}", f"one of {', '.join(METHODS)}", repr(method))
    if not 0 < threshold < 1:
        raise ConfigError("invalid --threshold", "a share of the map's peak in (0, 1)", repr(threshold))
    if top_k < 1:
        raise ConfigError("invalid --top-k", "a whole number >= 1", repr(top_k))


def map_boxes(heatmap: np.ndarray, size: int, threshold: float) -> list[tuple[float, tuple[float, float, float, float]]]:
    """(share of mass, (x0, y0, x1, y1) as fractions of the model input) of each component of
    ``heatmap`` (upsampled to ``size``) at or above ``threshold`` x its peak, largest share first.

    Example:
        >>> heat = np.zeros((8, 8)); heat[1:3, 1:3] = 1; heat[5:7, 4:8] = 0.8
        >>> [(round(s, 2), b) for s, b in map_boxes(heat, 8, 0.5)]
        [(0.62, (0.5, 0.625, 1.0, 0.875)), (0.38, (0.125, 0.125, 0.375, 0.375))]
    """
    from scipy import ndimage

    big = upsample(heatmap, (size, size)) if heatmap.shape != (size, size) else np.asarray(heatmap, np.float32)
    peak = float(big.max())
    if not peak > 0:
        return []
    mask = big >= threshold * peak
    labels, count = ndimage.label(mask)
    if count == 0:
        return []
    masses = ndimage.sum(big, labels, index=np.arange(1, count + 1))
    total = float(masses.sum())
    found = []
    for index, where in enumerate(ndimage.find_objects(labels)):
        rows, columns = where
        if (labels[where] == index + 1).sum() < MIN_AREA * size * size:
            continue
        found.append((float(masses[index]) / total, (columns.start / size, rows.start / size,
                                                      columns.stop / size, rows.stop / size)))
    return sorted(found, key=lambda item: -item[0])


def to_original(box: tuple[float, float, float, float], shape: tuple[int, int], mode: str) -> tuple[float, ...]:
    """A box in fractions of the model input -> pixels of an image of ``shape`` (height, width),
    undoing the run's resize mode with the offsets of ``data.images.square``."""
    height, width = shape
    x0, y0, x1, y1 = box
    if mode == "stretch":
        return x0 * width, y0 * height, x1 * width, y1 * height
    if mode == "crop":
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        return left + x0 * side, top + y0 * side, left + x1 * side, top + y1 * side
    top, left = (max(height, width) - height) // 2, (max(height, width) - width) // 2
    padded_h, padded_w = height + 2 * top, width + 2 * left
    clip = lambda v, hi: min(max(v, 0.0), hi)  # noqa: E731
    return (clip(x0 * padded_w - left, width), clip(y0 * padded_h - top, height),
            clip(x1 * padded_w - left, width), clip(y1 * padded_h - top, height))


def original_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file as shown (EXIF rotation applied), from its header."""
    from PIL import Image

    with Image.open(path) as image:
        width, height = image.size
        if image.getexif().get(0x0112) in (5, 6, 7, 8):
            width, height = height, width
    return height, width


def _pixel_box(label: str, score: float, box, decoded: tuple[int, int], original: tuple[int, int], mode: str) -> Box:
    x0, y0, x1, y1 = to_original(box, decoded, mode)
    sy, sx = original[0] / decoded[0], original[1] / decoded[1]  # a JPEG decoded at a reduced scale
    clamp = lambda v, hi: int(min(max(round(v), 0), hi))  # noqa: E731
    return Box(label, round(score, 6), clamp(x0 * sx, original[1]), clamp(y0 * sy, original[0]),
               clamp(x1 * sx, original[1]), clamp(y1 * sy, original[0]))


def peak_xy(heatmap: np.ndarray, size: int, decoded: tuple[int, int], original: tuple[int, int], mode: str) -> tuple[int, int]:
    """(x, y) in the original image of the map's hottest point."""
    big = upsample(heatmap, (size, size))
    row, column = np.unravel_index(int(np.argmax(big)), big.shape)
    centre = ((column + 0.5) / size, (row + 0.5) / size) * 2
    box = _pixel_box("", 0.0, centre, decoded, original, mode)
    return min(box.x0, original[1] - 1), min(box.y0, original[0] - 1)


@dataclass
class Picture:
    """An image file as read for localisation: the decoded picture, the model input, the original size."""

    path: str
    decoded: np.ndarray
    pixels: np.ndarray
    original: tuple[int, int]

    @classmethod
    def read(cls, path: str | Path, size: int, mode: str) -> Picture:
        decoded = read_image(path, size)
        return cls(str(path), decoded, resize(decoded, size, mode), original_size(path))


def image_boxes(picture: Picture, maps: dict[int, np.ndarray], probabilities: np.ndarray, names: list[str],
                mode: str, threshold: float) -> list[Box]:
    """The boxes of one image from its maps by class index, best first."""
    size = picture.pixels.shape[0]
    boxes = [_pixel_box(names[c], float(probabilities[c]) * share, box, picture.decoded.shape[:2], picture.original, mode)
             for c, heat in maps.items() for share, box in map_boxes(heat, size, threshold)]
    return sorted([b for b in boxes if b.x1 > b.x0 and b.y1 > b.y0], key=lambda b: -b.score)


def check_crops(model, picture: Picture, boxes: list[Box], mode: str) -> list[Box]:
    """Each box with what the run answers for its crop; only the boxes whose crop gets the box's class."""
    if not boxes:
        return []
    sy, sx = picture.decoded.shape[0] / picture.original[0], picture.decoded.shape[1] / picture.original[1]
    crops = []
    for b in boxes:
        x0, y0 = int(b.x0 * sx), int(b.y0 * sy)
        x1, y1 = max(x0 + 1, int(np.ceil(b.x1 * sx))), max(y0 + 1, int(np.ceil(b.y1 * sy)))
        crops.append(resize(np.ascontiguousarray(picture.decoded[y0:y1, x0:x1]), model.size, mode))
    probabilities = model.predict_pixels(np.stack(crops)).probabilities
    names = model.class_names
    checked = [replace(b, crop_label=names[int(p.argmax())], crop_probability=round(float(p[names.index(b.label)]), 6))
               for b, p in zip(boxes, probabilities)]
    return [b for b in checked if b.crop_label == b.label]
