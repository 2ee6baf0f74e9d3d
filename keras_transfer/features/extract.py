"""Streaming feature extraction: decode + resize in threads, batched inference, bounded memory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from keras_transfer import log
from keras_transfer.data.dataset import Split
from keras_transfer.data.images import resize

BatchFn = Callable[[np.ndarray], np.ndarray]


def load_resized(split: Split, index: int, size: int, mode: str) -> np.ndarray | str:
    """The image at ``index`` resized to (size, size, 3) uint8, or the reason it failed."""
    try:
        return resize(split.image(index, size), size, mode)
    except Exception as error:  # corrupt data must not stop a long extraction
        return f"{type(error).__name__}: {error}"


def iter_batches(split: Split, size: int, mode: str, batch_size: int,
                 workers: int = 2) -> Iterator[tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]]:
    """Yields (indices, uint8 images, failures) batches; decoding runs one batch ahead."""
    chunks = [np.arange(i, min(i + batch_size, len(split))) for i in range(0, len(split), batch_size)]
    with ThreadPoolExecutor(workers) as pool:
        def submit(chunk: np.ndarray) -> list[Future]:
            return [pool.submit(load_resized, split, int(i), size, mode) for i in chunk]

        pending = submit(chunks[0]) if chunks else []
        for n, chunk in enumerate(chunks):
            current, pending = pending, (submit(chunks[n + 1]) if n + 1 < len(chunks) else [])
            results = [f.result() for f in current]
            ok = [k for k, r in enumerate(results) if not isinstance(r, str)]
            failures = [(int(chunk[k]), r) for k, r in enumerate(results) if isinstance(r, str)]
            images = np.stack([results[k] for k in ok]) if ok else np.zeros((0, size, size, 3), np.uint8)
            yield chunk[ok], images, failures


def extract_features(split: Split, batch_fn: BatchFn, size: int, mode: str = "stretch",
                     batch_size: int = 32, desc: str = "features") -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Runs every image of ``split`` through ``batch_fn``.

    Args:
        split: The images.
        batch_fn: Maps a uint8 batch (B, size, size, 3) to float features (B, D).
        size: Input side of the backbone.
        mode: Resize mode (stretch, pad, crop).
        batch_size: Images per inference call.
        desc: Progress-bar label.

    Returns:
        (features (M, D) float32, indices (M,) of the images that decoded, failures as
        (image id, reason) for those that did not).
    """
    ids = split.ids()
    features, kept, failed = [], [], []
    with log.progress(total=len(split), desc=desc) as bar:
        for indices, images, failures in iter_batches(split, size, mode, batch_size):
            if len(images):
                features.append(np.asarray(batch_fn(images), dtype=np.float32))
                kept.append(indices)
            failed += [(ids[i], reason) for i, reason in failures]
            bar.update(len(indices) + len(failures))
    if not features:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64), failed
    return np.concatenate(features), np.concatenate(kept).astype(np.int64), failed
