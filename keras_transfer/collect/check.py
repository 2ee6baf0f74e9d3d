"""Is a download an image? Decided by its content (Pillow decodes it whole), never by the URL's
extension or the Content-Type; and its perceptual hash, for the audit's near-duplicate rule."""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import numpy as np

from keras_transfer.data.images import to_rgb

# Pillow format -> the extension the file is saved with
EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif"}
HASH_SIZE = 8  # 64-bit pHash, as the audit's near-duplicate check (audit/near.py)
NEAR_BITS = 4  # the audit's strict pHash confirmation (at least 4 bits): at or below, a near duplicate


@dataclass(frozen=True)
class Checked:
    """A decoded download: its SHA-256, extension, size, and pHash (as a hex string, and of its mirror image);
    or the ``reason`` (``not_an_image``, ``too_small``, ``too_large``) and ``detail`` why not."""

    sha256: str = ""
    extension: str = ""
    width: int = 0
    height: int = 0
    phash: str = ""
    mirror: str = ""
    reason: str = ""
    detail: str = ""


def check_image(content: bytes, min_side: int, max_pixels: int) -> Checked:
    """Decodes ``content`` fully; see :class:`Checked`."""
    import imagehash
    from PIL import Image

    digest = hashlib.sha256(content).hexdigest()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(content)) as image:
                kind, (width, height) = image.format, image.size
                if kind not in EXTENSIONS:
                    return Checked(digest, reason="not_an_image", detail=f"{kind} is not a supported image format")
                if width * height > max_pixels:
                    return Checked(digest, reason="too_large", detail=f"{width}x{height} pixels, over --max-pixels")
                image.seek(0)
                image.load()
                rgb = to_rgb(image)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        return Checked(digest, reason="too_large", detail=str(error)[:200])
    except Exception as error:  # Pillow raises many types for what is not an image
        head = content[:64].decode("latin-1").strip().lower()
        seen = "an HTML page" if head.startswith(("<!doctype html", "<html")) or "<html" in head else f"{len(content)} bytes"
        return Checked(digest, reason="not_an_image", detail=f"{seen}: {type(error).__name__}: {error}"[:200])
    if min(width, height) < min_side:
        return Checked(digest, reason="too_small", detail=f"{width}x{height}, a side under --min-side {min_side}")
    small = rgb.copy()
    small.thumbnail((256, 256))
    mirror = small.transpose(Image.FLIP_LEFT_RIGHT)
    return Checked(digest, EXTENSIONS[kind], width, height, str(imagehash.phash(small, HASH_SIZE)),
                   str(imagehash.phash(mirror, HASH_SIZE)))


def hash_bits(a: str, b: str) -> int:
    """Hamming distance of two hex pHashes."""
    return int(np.unpackbits(np.frombuffer(bytes.fromhex(a), np.uint8) ^ np.frombuffer(bytes.fromhex(b), np.uint8)).sum())


def near_copy(item: Checked, kept: dict[str, tuple[str, str]]) -> tuple[str, int] | None:
    """(sha256, bits) of a kept image that ``item`` nearly copies (pHash within ``NEAR_BITS``, mirror
    image included, as the audit confirms a near duplicate), or None. ``kept``: sha256 -> (phash, mirror)."""
    best = None
    for sha, (phash, _) in kept.items():
        bits = min(hash_bits(item.phash, phash), hash_bits(item.mirror, phash))
        if bits <= NEAR_BITS and (best is None or bits < best[1]):
            best = (sha, bits)
    return best
