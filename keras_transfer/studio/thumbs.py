"""Thumbnails of the data folder's images, made once and cached in the studio's workspace (never in
the data folder): a JPEG per image, keyed by its path, size and modification time."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

SIZE = 192  # pixels of the longer side: sharp in a grid cell on a HiDPI screen, ~6 KB each


class Thumbnails:
    """JPEG thumbnails cached in ``folder``."""

    def __init__(self, folder: Path, size: int = SIZE):
        self.folder, self.size = Path(folder), size

    def jpeg(self, image_id: str, source: Path) -> bytes:
        """The thumbnail of image ``image_id`` (file ``source``), made and cached on first use."""
        from PIL import Image

        stat = Path(source).stat()  # FileNotFoundError for a vanished file
        key = hashlib.sha1(f"{image_id}\0{stat.st_size}\0{stat.st_mtime_ns}\0{self.size}".encode(
            "utf-8", "surrogateescape")).hexdigest()
        cached = self.folder / key[:2] / f"{key}.jpg"
        if cached.is_file():
            return cached.read_bytes()
        with Image.open(source) as image:
            image.draft("RGB", (self.size, self.size))  # JPEG: decode at 1/2, 1/4 or 1/8 scale directly
            image.seek(0)
            image = image.convert("RGB")
            image.thumbnail((self.size, self.size))
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=82)
        data = buffer.getvalue()
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.part")
        partial.write_bytes(data)
        os.replace(partial, cached)
        return data
