"""The extraction pipeline: decode + resize + augment in threads, overlapped with batched inference.

Decoding runs a bounded number of images ahead of the inference runtime in a thread pool (PIL
releases the GIL while decoding and resizing), so the runtime never waits on JPEG decoding and
memory stays bounded by that look-ahead, whatever the size of the dataset.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from keras_transfer.data.augment import AugmentPolicy, augment
from keras_transfer.data.dataset import Split
from keras_transfer.data.images import resize
from keras_transfer.features.runtime import Runtime


@dataclass(frozen=True)
class Task:
    """Views to extract for one image: ``index`` into the split, its content hash, view numbers."""

    index: int
    content: str
    views: tuple[int, ...]


Tag = tuple[Task, int]  # (task, view number) of one row of a batch


@dataclass(frozen=True)
class ViewMaker:
    """Turns an image of a split into the backbone-ready uint8 views of a task."""

    size: int
    resize_mode: str = "stretch"
    seed: int = 0
    policy: AugmentPolicy = AugmentPolicy()

    def __call__(self, split: Split, task: Task) -> list[np.ndarray] | str:
        """The task's views as (size, size, 3) uint8 arrays, or the reason decoding failed."""
        try:
            image = resize(split.image(task.index, self.size), self.size, self.resize_mode)
        except Exception as error:  # corrupt data must not stop a long extraction
            return f"{type(error).__name__}: {error}"
        return [augment(image, task.content, view, self.seed, self.policy) for view in task.views]


def ordered_map(fn: Callable, items: Iterable, workers: int, ahead: int) -> Iterator:
    """``map(fn, items)`` in a thread pool, in order, at most ``ahead`` items in flight."""
    with ThreadPoolExecutor(workers) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _batches(split: Split, tasks: Iterable[Task], maker: ViewMaker, batch_size: int, workers: int,
             failures: list[tuple[Task, str]]) -> Iterator[tuple[list[Tag], np.ndarray]]:
    tags: list[Tag] = []
    images: list[np.ndarray] = []
    made = ordered_map(lambda task: (task, maker(split, task)), tasks, workers, ahead=4 * batch_size)
    for task, views in made:
        if isinstance(views, str):
            failures.append((task, views))
            continue
        tags += [(task, view) for view in task.views]
        images += views
        while len(images) >= batch_size:
            yield tags[:batch_size], np.stack(images[:batch_size])
            tags, images = tags[batch_size:], images[batch_size:]
    if images:
        yield tags, np.stack(images)


def extract(split: Split, tasks: Iterable[Task], maker: ViewMaker, runtime: Runtime,
            failures: list[tuple[Task, str]], workers: int | None = None) -> Iterator[tuple[list[Tag], np.ndarray]]:
    """Streams ``(tags, features)`` batches for every view of every task, in task order.

    Args:
        split: The images.
        tasks: What to extract.
        maker: Decoding, resizing and augmentation.
        runtime: Inference runtime; its batch size sets the batch size here.
        failures: Receives (task, reason) for every image that could not be decoded.
        workers: Decoding threads (None: one per core, so decoding keeps up with an engine on
            every core; they idle once the look-ahead is full).
    """
    workers = workers or os.cpu_count() or 2
    yield from runtime.stream(_batches(split, tasks, maker, runtime.batch_size, workers, failures))
