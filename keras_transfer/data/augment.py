"""Deterministic augmented views of an image: flip, rotation, zoom, shift, shear and colour.

View ``k`` (k >= 1) of an image is a pure function of (image content, k, seed, policy), so it
can be extracted once and cached like any other image; view 0 is the image itself and view
``FLIP`` (-1) its left-right mirror.
Geometry is one affine warp with reflected borders (like Keras' ``fill_mode="reflect"``);
colour is brightness, contrast and saturation jitter.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance

ORIGINAL_VIEW = "orig"
FLIP = -1  # the view number of the left-right mirror image (deterministic, no seed or policy)


@dataclass(frozen=True)
class AugmentPolicy:
    """Ranges of the random transforms (each drawn uniformly in [-range, +range]).

    Attributes:
        rotation: Degrees.
        zoom: Relative scale change (0.1: 0.9x to 1.1x).
        shift: Fraction of the side, horizontally and vertically.
        shear: Degrees.
        flip: Mirror left-right with probability 1/2.
        brightness, contrast, saturation: Relative change of each.
    """

    rotation: float = 15.0
    zoom: float = 0.1
    shift: float = 0.1
    shear: float = 8.0
    flip: bool = True
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2

    def fingerprint(self) -> str:
        blob = json.dumps(dataclasses.asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:8]


def view_name(view: int, seed: int = 0, policy: AugmentPolicy = AugmentPolicy()) -> str:
    """Cache name of a view: ``"orig"`` for 0, ``"flip"`` for :data:`FLIP`, else ``"aug<k>-<policy>-s<seed>"``."""
    if view == FLIP:
        return "flip"
    return ORIGINAL_VIEW if view == 0 else f"aug{view}-{policy.fingerprint()}-s{seed}"


def _rng(content: str, view: int, seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, view, int(content[:16], 16)])


def _affine(size: int, rng: np.random.Generator, policy: AugmentPolicy) -> np.ndarray:
    """3x3 matrix mapping output pixel coordinates to input ones (about the centre)."""
    def draw(limit: float) -> float:
        return float(rng.uniform(-limit, limit))

    angle, shear = math.radians(draw(policy.rotation)), math.radians(draw(policy.shear))
    scale = 1.0 + draw(policy.zoom)
    flip = -1.0 if policy.flip and rng.random() < 0.5 else 1.0
    dx, dy = draw(policy.shift) * size, draw(policy.shift) * size
    cos, sin = math.cos(angle), math.sin(angle)
    forward = (np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1]])
               @ np.array([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]])
               @ np.array([[1, -math.sin(shear), 0], [0, math.cos(shear), 0], [0, 0, 1]])
               @ np.diag([scale * flip, scale, 1.0]))
    centre = np.array([[1, 0, size / 2], [0, 1, size / 2], [0, 0, 1]])
    return centre @ np.linalg.inv(forward) @ np.linalg.inv(centre)


def augment(image: np.ndarray, content: str, view: int, seed: int = 0,
            policy: AugmentPolicy = AugmentPolicy()) -> np.ndarray:
    """View ``view`` of a square RGB uint8 image (view 0 returns the image unchanged).

    Args:
        image: (S, S, 3) uint8, already resized for the backbone.
        content: The image's content hash (hex), which makes the view deterministic.
        view: View number.
        seed: Global seed of the augmentation.
        policy: Ranges of the transforms.

    Example:
        >>> img = np.zeros((32, 32, 3), np.uint8)
        >>> augment(img, "ab" * 16, 1).shape
        (32, 32, 3)
    """
    if view == 0:
        return image
    if view == FLIP:
        return np.ascontiguousarray(image[:, ::-1])
    rng = _rng(content, view, seed)
    size = image.shape[0]
    pad = size // 2
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    matrix = _affine(size, rng, policy)
    shifted = np.array([[1, 0, pad], [0, 1, pad], [0, 0, 1]]) @ matrix  # into padded coordinates
    warped = Image.fromarray(padded).transform((size, size), Image.AFFINE, tuple(shifted[:2].ravel()),
                                               resample=Image.BILINEAR)
    for enhancer, limit in ((ImageEnhance.Brightness, policy.brightness),
                            (ImageEnhance.Contrast, policy.contrast),
                            (ImageEnhance.Color, policy.saturation)):
        warped = enhancer(warped).enhance(1.0 + float(rng.uniform(-limit, limit)))
    return np.asarray(warped)


def shift_flip(images: np.ndarray, rng: np.random.Generator, shift: float = 0.125) -> np.ndarray:
    """Random translation (crop of a reflect-padded copy) and left-right flip of a uint8 batch.

    The cheap on-the-fly augmentation of full fine-tuning (the CIFAR "pad 4, crop 32" recipe,
    scaled to any size): a few microseconds per image, unlike Keras' per-image layers on torch.

    Example:
        >>> shift_flip(np.zeros((2, 16, 16, 3), np.uint8), np.random.default_rng(0)).shape
        (2, 16, 16, 3)
    """
    size = images.shape[1]
    pad = max(1, int(size * shift))
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    out = np.empty_like(images)
    for i, (dy, dx) in enumerate(rng.integers(0, 2 * pad + 1, (len(images), 2))):
        crop = padded[i, dy:dy + size, dx:dx + size]
        out[i] = crop[:, ::-1] if rng.random() < 0.5 else crop
    return out


def mixup(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
          alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Mixup (Zhang et al. 2018): each image blended with another of the batch, labels alike.

    The weight of each image's own content is max(l, 1 - l) with l ~ Beta(alpha, alpha), so
    every blended image stays closer to its own label. Returns float32 images.
    """
    if alpha <= 0 or len(images) < 2:
        return images.astype(np.float32), labels
    weight = rng.beta(alpha, alpha, len(images)).astype(np.float32)
    weight = np.maximum(weight, 1 - weight)
    other = rng.permutation(len(images))
    w_img = weight[:, None, None, None]
    mixed = images.astype(np.float32) * w_img + images[other].astype(np.float32) * (1 - w_img)
    return mixed, labels * weight[:, None] + labels[other] * (1 - weight[:, None])
