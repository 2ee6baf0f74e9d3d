"""Decoding image files to RGB uint8 arrays, and resizing them for a backbone."""

from __future__ import annotations

import contextlib
import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"})
RESIZE_MODES = ("stretch", "pad", "crop")
MAX_FILE_BYTES = 512 * 2**20  # no image file of a dataset is read beyond this many bytes
NOT_REGULAR = "not a regular file"  # how every reason for a special file starts
TOO_LARGE = "larger than"
_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


class UnreadableFile(OSError):
    """A path that is never read: not a regular file after following links, or too large."""


def _refusal(mode: int, size: int, max_bytes: int) -> str | None:
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "a special file")
        return f"{NOT_REGULAR} ({kind}): never read"
    if size > max_bytes:
        return f"{TOO_LARGE} {max_bytes // 2**20} MB ({size / 2**20:.0f} MB): not read"
    return None


def special_file(path: str | Path, max_bytes: int = MAX_FILE_BYTES) -> str | None:
    """Why ``path`` must not be read (a FIFO, device, socket, folder, or too large), or None.

    Follows links (``x.jpg -> /dev/zero`` is a device); a stat never blocks, not even on a FIFO.
    """
    try:
        info = os.stat(path)
    except OSError:
        return None  # missing or unreadable: the open that follows says why
    return _refusal(info.st_mode, info.st_size, max_bytes)


class _Capped(io.RawIOBase):
    """A file read no further than ``limit`` bytes, whatever it grows to while being read."""

    def __init__(self, fd: int, limit: int):
        self._file, self._limit = io.FileIO(fd, "rb"), limit

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def readinto(self, buffer) -> int:
        left = self._limit - self._file.tell()
        return 0 if left <= 0 else self._file.readinto(memoryview(buffer).cast("B")[:left])

    def close(self) -> None:
        self._file.close()
        super().close()


def open_regular(path: str | Path, max_bytes: int = MAX_FILE_BYTES) -> io.BufferedReader:
    """Opens a user's file for reading, only if it is a regular file (links followed) of at most
    ``max_bytes``; never blocks (a FIFO, device or socket is refused before it is opened, and the
    open itself is non-blocking), and never reads past ``max_bytes``.

    Raises:
        UnreadableFile: a FIFO, device, socket or folder, or a file over ``max_bytes``.
        OSError: the file is missing or cannot be opened.
    """
    if reason := special_file(path, max_bytes):
        raise UnreadableFile(reason)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)  # what was opened, should the path have changed since the check
        if reason := _refusal(info.st_mode, info.st_size, max_bytes):
            raise UnreadableFile(reason)
        return io.BufferedReader(_Capped(fd, max_bytes))
    except BaseException:
        os.close(fd)
        raise


def read_text(path: str | Path, max_bytes: int = 256 * 2**20) -> str:
    """A user's UTF-8 text file (a labels table, a URL list), read through ``open_regular``.

    Raises:
        OSError (``UnreadableFile`` for a FIFO, device, socket, folder, or a file over ``max_bytes``),
        UnicodeDecodeError.
    """
    with open_regular(path, max_bytes) as handle:
        return handle.read().decode("utf-8-sig")


@contextlib.contextmanager
def open_image(path) -> Iterator[Image.Image]:
    """``Image.open`` of a path (through ``open_regular``) or of a file object (uploads)."""
    if isinstance(path, (str, os.PathLike)):
        with open_regular(path) as handle, Image.open(handle) as image:
            yield image
    else:
        with Image.open(path) as image:
            yield image


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
    with open_image(path) as image:
        image.seek(0)  # first frame of animated GIF/WebP
        if min_size:
            image.draft("RGB", (min_size, min_size))
        image = ImageOps.exif_transpose(image)
        return np.asarray(to_rgb(image), dtype=np.uint8)


def check_image(path: Path) -> str | None:
    """Cheap validity check (header + structure, no full decode). Returns a reason or None."""
    try:
        with open_image(path) as image:
            image.verify()
        return None
    except UnreadableFile as error:
        return str(error)
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
        except UnreadableFile as error:
            failures.append((str(path), str(error)))
        except Exception as error:  # PIL raises many types for bad files
            failures.append((str(path), f"not a readable image ({type(error).__name__}: {error})"))
    return ok, images, failures
