"""A feature matrix too large for memory: float16 rows on disk, memory-mapped, read in chunks.

A million images of the default features (3,864 values) are 15 GB as float32; stored as float16
they are 7.7 GB on disk and never loaded whole: the solver reads them a chunk of rows at a time,
converted to float32 (pooled features lose nothing that matters to a linear head in float16:
relative error ~5e-4). A store is one folder:

- ``features.npy``: the (V * N, D) float16 matrix, NumPy's own ``.npy`` format (a plain header
  then the raw rows, so it memory-maps), view-major: rows ``v * N + i`` hold view ``v`` of image
  ``i``, as ``views.reshape(-1, D)`` of a (V, N, D) array;
- ``labels.npy``: the (N,) integer labels of the images;
- ``matrix.json``: rows, dimension, views; written last, so a store whose writing stopped halfway
  has none and is refused.

Every read checks the file sizes against the header: a truncated or foreign file raises
:class:`~keras_transfer.base.errors.DatasetError`, never a bus error on a short mapping. Nothing
is unpickled (``allow_pickle=False``). Chunks are read through one read-only ``mmap``; after a
chunk is converted its pages are dropped from the process (``madvise(MADV_DONTNEED)``), so the
resident memory stays one chunk however many passes the solver makes (the kernel's page cache
keeps the file for the next pass).
"""

from __future__ import annotations

import json
import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_transfer.base.errors import DatasetError
from keras_transfer.base.paths import write_json

FEATURES, LABELS, META = "features.npy", "labels.npy", "matrix.json"
FORMAT = 1
_DROP = getattr(mmap, "MADV_DONTNEED", None)  # Linux/macOS; elsewhere the pages stay until unmapped


def _bad(folder: Path, what: str, expected: str, received: str) -> DatasetError:
    return DatasetError(f"feature matrix {folder}: {what}", expected, received,
                        "write the matrix again (FeatureMatrix.create / from_array); a copy may have stopped halfway")


@dataclass
class ArrayRows:
    """An in-memory (R, D) matrix with the reading interface of :class:`FeatureMatrix`."""

    array: np.ndarray

    @property
    def rows(self) -> int:
        return len(self.array)

    @property
    def dim(self) -> int:
        return self.array.shape[1]

    def chunk(self, start: int, stop: int) -> np.ndarray:
        return np.asarray(self.array[start:stop], np.float32)

    def take(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.array[np.sort(rows)], np.float32)

    def chunks(self, size: int) -> Iterator[tuple[int, np.ndarray]]:
        for start in range(0, self.rows, size):
            yield start, self.chunk(start, min(start + size, self.rows))


class FeatureMatrix(ArrayRows):
    """A float16 feature matrix on disk (see the module doc), opened read-only.

    Attributes:
        folder: The store's folder.
        labels: (N,) integer labels of the images (in memory: 8 bytes an image).
        views: Views per image (V); ``rows == views * len(labels)``.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        meta_path, path = self.folder / META, self.folder / FEATURES
        if not meta_path.is_file():
            raise _bad(self.folder, f"no {META}", f"a folder written by FeatureMatrix with {META} beside {FEATURES}",
                       "missing (not a feature matrix, or its writing stopped before the end)")
        try:
            meta = json.loads(meta_path.read_text())
            self.views, rows, dim = int(meta["views"]), int(meta["rows"]), int(meta["dim"])
            self.labels = np.load(self.folder / LABELS, allow_pickle=False)
            with open(path, "rb") as handle:
                version = np.lib.format.read_magic(handle)
                read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                        else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = read(handle, max_header_size=100_000)
                self._offset = handle.tell()
        except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as error:
            raise _bad(self.folder, "unreadable", f"{META}, {LABELS} and a float16 {FEATURES}",
                       f"{type(error).__name__}: {error}") from None
        if dtype != np.float16 or fortran or tuple(shape) != (rows, dim) or rows != self.views * len(self.labels):
            raise _bad(self.folder, "header does not match", f"float16 C-order ({rows}, {dim}) = {self.views} views "
                       f"x {len(self.labels)} labels", f"{dtype} {'Fortran' if fortran else 'C'}-order {tuple(shape)}")
        size, want = path.stat().st_size, self._offset + rows * dim * 2
        if size != want:
            raise _bad(self.folder, f"{FEATURES} is truncated" if size < want else f"{FEATURES} has trailing bytes",
                       f"{want:,} bytes ({rows:,} rows x {dim} float16)", f"{size:,} bytes")
        self._rows, self._dim = rows, dim
        self._file = open(path, "rb")
        self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if rows * dim else None
        self.array = (np.frombuffer(self._map, np.float16, rows * dim, self._offset).reshape(rows, dim)
                      if self._map is not None else np.zeros((rows, dim), np.float16))

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def nbytes(self) -> int:
        """Bytes on disk of the features (float16)."""
        return self._rows * self._dim * 2

    def chunk(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` as float32; their pages are dropped from this process afterwards."""
        out = self.array[start:stop].astype(np.float32)
        self._drop(start, stop)
        return out

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The given rows (any order, returned sorted) as float32, e.g. a subsample.

        Read row by row with plain file reads, not through the mapping: scattered faults on the
        mapping pull in the kernel's read-around of every row (2,000 rows of a million-row store
        made the process 2.3 GB).
        """
        rows, size = np.sort(rows), self._dim * 2
        out = np.empty((len(rows), self._dim), np.float32)
        for i, row in enumerate(rows):
            self._file.seek(self._offset + int(row) * size)
            out[i] = np.frombuffer(self._file.read(size), np.float16)
        return out

    def views_of(self, images: np.ndarray) -> np.ndarray:
        """Every view of the given images as (V, len(images), D) float32."""
        images = np.sort(images)
        rows = (np.arange(self.views)[:, None] * len(self.labels) + images[None]).ravel()
        return self.take(rows).reshape(self.views, len(images), self._dim)

    def _drop(self, start: int, stop: int) -> None:
        if _DROP is None or self._map is None:
            return
        first = (self._offset + start * self._dim * 2) // mmap.PAGESIZE * mmap.PAGESIZE
        last = self._offset + stop * self._dim * 2
        self._map.madvise(_DROP, first, last - first)

    def close(self) -> None:
        self.array = None
        if self._map is not None:
            self._map.close()
        self._file.close()

    def __enter__(self) -> FeatureMatrix:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def create(folder: str | Path, labels: np.ndarray, dim: int, views: int = 1) -> MatrixWriter:
        """A writer of a new store in ``folder`` (replaced if present): fill it row block by row block."""
        return MatrixWriter(Path(folder), np.asarray(labels), dim, views)

    @staticmethod
    def from_array(folder: str | Path, features: np.ndarray, labels: np.ndarray) -> FeatureMatrix:
        """Writes features (N, D) or views (V, N, D) and their (N,) labels as a store, and opens it."""
        features = features if features.ndim == 3 else features[None]
        with FeatureMatrix.create(folder, labels, features.shape[-1], len(features)) as writer:
            writer.write(0, features.reshape(-1, features.shape[-1]))
        return FeatureMatrix(folder)


class MatrixWriter:
    """Writes a store's rows (``write(start, block)``); ``matrix.json`` only once all are written."""

    def __init__(self, folder: Path, labels: np.ndarray, dim: int, views: int):
        self.folder, self.labels, self.dim, self.views = folder, labels, dim, views
        self.rows, self.written = views * len(labels), 0
        folder.mkdir(parents=True, exist_ok=True)
        (folder / META).unlink(missing_ok=True)
        self.array = np.lib.format.open_memmap(folder / FEATURES, "w+", np.float16, (self.rows, dim))

    def write(self, start: int, block: np.ndarray) -> None:
        """Rows ``start:start + len(block)`` (any float dtype, stored as float16)."""
        self.array[start:start + len(block)] = block
        self.written += len(block)

    def __enter__(self) -> MatrixWriter:
        return self

    def __exit__(self, kind, *exc) -> None:
        self.array.flush()
        del self.array
        if kind is None:
            if self.written != self.rows:
                raise _bad(self.folder, "not every row was written", f"{self.rows:,} rows", f"{self.written:,}")
            np.save(self.folder / LABELS, self.labels, allow_pickle=False)
            write_json(self.folder / META, {"format": FORMAT, "rows": self.rows, "dim": self.dim, "views": self.views})
            with open(self.folder / FEATURES, "rb") as handle:
                os.fsync(handle.fileno())
