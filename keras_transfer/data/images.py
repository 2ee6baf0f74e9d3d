"""Decoding image files to RGB uint8 arrays, and resizing them for a backbone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"})
RESIZE_MODES = ("stretch", "pad", "crop")


def is_image_file(path: Path) -> bool:
    """True for files whose extension (any letter case) is a supported image format."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def to_rgb(image: Image.Image) -> Image.Image:
    """Converts any PIL mode (L, LA, P, RGBA, CMYK, I;16, ...) to RGB; transparency goes white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        array = np.asarray(image, dtype=np.float64)
        span = max(array.max() - array.min(), 1e-12)
        image = Image.fromarray(((array - array.min()) / span * 255).astype(np.uint8))
    if image.mode == "P" and "transparency" in image.info or image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def read_image(path: str | Path, min_size: int | None = None) -> np.ndarray:
    """Reads an image file as an RGB uint8 array (H, W, 3), honouring EXIF orientation.

    Args:
        path: The image file.
        min_size: If given, large JPEGs are decoded at a reduced scale (DCT scaling) that
            still keeps both sides at least ``min_size`` pixels: several times faster.

    Raises:
        OSError / ValueError: the file is unreadable or not a valid image.
    """
    with Image.open(path) as image:
        image.seek(0)  # first frame of animated GIF/WebP
        if min_size:
            image.draft("RGB", (min_size, min_size))
        image = ImageOps.exif_transpose(image)
        return np.asarray(to_rgb(image), dtype=np.uint8)


def check_image(path: Path) -> str | None:
    """Cheap validity check (header + structure, no full decode). Returns a reason or None."""
    try:
        with Image.open(path) as image:
            image.verify()
        return None
    except Exception as error:  # PIL raises many types for bad files
        return f"{type(error).__name__}: {error}".strip()


def array_to_rgb(array: np.ndarray) -> np.ndarray:
    """Converts one HW / HWC array (uint8 or float in [0, 1] or [0, 255]) to RGB uint8 HWC."""
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[..., None]
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    elif array.shape[-1] == 4:
        array = array[..., :3]
    if array.dtype != np.uint8:
        array = array.astype(np.float64)
        if array.max(initial=0) <= 1.0:
            array = array * 255.0
        array = np.clip(np.rint(array), 0, 255).astype(np.uint8)
    return array


def square(image: np.ndarray, mode: str) -> np.ndarray:
    """Centre-crops (``crop``) or zero-pads (``pad``) an (H, W, C) image to a square.

    Uses the integer offsets of keras' ``Resizing(crop_to_aspect_ratio / pad_to_aspect_ratio)``,
    the layer saved inside every classifier, so training and the saved model see the same pixels.
    """
    height, width = image.shape[:2]
    if mode == "crop":
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        return image[top:top + side, left:left + side]
    top, left = (max(height, width) - height) // 2, (max(height, width) - width) // 2
    return np.pad(image, ((top, top), (left, left), (0, 0)))


def resize(image: np.ndarray, size: int, mode: str = "stretch") -> np.ndarray:
    """Resizes an RGB uint8 image to (size, size, 3) (bilinear, antialiased when shrinking).

    Args:
        image: RGB uint8 array (H, W, 3).
        size: Target side in pixels.
        mode: ``stretch`` (ignore aspect), ``pad`` (fit inside, black borders) or
            ``crop`` (centre crop to a square, then resize).
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {mode!r}; expected one of {RESIZE_MODES}")
    if mode != "stretch":
        image = square(image, mode)
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR, reducing_gap=None))


def read_batch(paths: list[Path], size: int, mode: str = "stretch") -> tuple[list[Path], list[np.ndarray], list[tuple[str, str]]]:
    """Reads and resizes image files for a model; returns (readable paths, images, (path, reason) failures)."""
    ok, images, failures = [], [], []
    for path in paths:
        try:
            images.append(resize(read_image(path, size), size, mode))
            ok.append(path)
        except Exception as error:  # PIL raises many types for bad files
            failures.append((str(path), f"not a readable image ({type(error).__name__}: {error})"))
    return ok, images, failures
