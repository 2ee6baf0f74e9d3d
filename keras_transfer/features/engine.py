"""The feature engine: cached views first, then only the missing ones through the runtime."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from keras_transfer.base import log
from keras_transfer.data.augment import view_name
from keras_transfer.data.dataset import Split
from keras_transfer.data.images import special_file
from keras_transfer.features.cache import FeatureCache
from keras_transfer.features.executor import Executor, LocalExecutor
from keras_transfer.features.extract import Tag, Task, ViewMaker
from keras_transfer.features.keys import content_keys, identity_hash
from keras_transfer.features.runtime import OpenVinoRuntime, Runtime, RuntimeOptions, make_runtime

# sink(view position, indices of the images sharing one content, their features)
Sink = Callable[[int, list[int], np.ndarray], None]


@dataclass
class Groups:
    """The distinct contents of a split (identical files are extracted once).

    Attributes:
        keys: Content hash of each group.
        first: Index in the split of each group's first image.
        number: Content hash -> group number.
        extra: Group number -> the other indices with the same content (duplicates only).
    """

    keys: list[str]
    first: np.ndarray
    number: dict[str, int]
    extra: dict[int, list[int]]

    @classmethod
    def of(cls, contents: list[str | None]) -> Groups:
        number: dict[str, int] = {}
        first: list[int] = []
        extra: dict[int, list[int]] = {}
        for i, content in enumerate(contents):
            if content is None:
                continue
            if content in number:
                extra.setdefault(number[content], []).append(i)
            else:
                number[content] = len(first)
                first.append(i)
        return cls(list(number), np.asarray(first, np.int64), number, extra)

    def rows(self, group: int) -> list[int]:
        return [int(self.first[group]), *self.extra.get(group, ())]


@dataclass
class FeatureEngine:
    """Extracts views of images through the shared cache; the runtime is built only on a miss.

    Attributes:
        extractor: Keras model, uint8 (B, S, S, 3) -> (B, *feature shape) features, or a
            ``Deferred`` one, built only when the runtime must export it.
        model_identity: What defines the extractor (backbone, weights hash, size, pooling, ...).
        maker: Decoding, resizing and augmentation (its resize mode and seed are part of the key).
        options: Runtime, precision and batching.
        cache: The shared feature cache.
        executor: Where the misses are extracted (``LocalExecutor`` here, or a ``RayExecutor``);
            the cache is written here either way.
        extracted: Views computed by the runtime so far (cache misses).
    """

    extractor: object
    model_identity: dict
    maker: ViewMaker
    options: RuntimeOptions = RuntimeOptions()
    cache: FeatureCache = field(default_factory=FeatureCache)
    extracted: int = 0
    executor: Executor = field(default_factory=LocalExecutor)
    single: Runtime | None = field(default=None, repr=False)  # every core on one image (``warm``)

    @property
    def identity(self) -> dict:
        """Everything the features depend on except the image and the view."""
        return {**self.model_identity, "resize": self.maker.resize_mode, **self.options.key()}

    @cached_property
    def identity_key(self) -> str:
        return identity_hash(self.identity)

    @cached_property
    def feature_shape(self) -> tuple[int, ...]:
        """Shape of one image's features: (D,) pooled, or (h, w, D) for spatial pooling."""
        known = getattr(self.extractor, "feature_shape", None)
        if known is not None:
            return tuple(known)
        from keras_transfer.features.extractor import resolve

        return tuple(int(d) for d in resolve(self.extractor).output_shape[1:])

    @cached_property
    def runtime(self) -> Runtime:
        """The inference runtime, built (exported, compiled) on first use only."""
        return make_runtime(self.extractor, self.model_identity, self.options, self.maker.size)

    def features(self, pixels: np.ndarray) -> np.ndarray:
        """Features of uint8 images (N, S, S, 3), in one call sized for it (serve, ``predict_pixels``).

        The images are cut into equal parts, one per parallel stream of the runtime (at most its
        batch size each: the shapes ``warm`` compiled), so one image runs alone and a batch
        spreads over every stream; nothing is padded.
        """
        if len(pixels) == 1 and self.single is not None:
            return next(self.single.stream([(None, pixels)]))[1]
        runtime = self.runtime
        streams = getattr(runtime, "streams", 1)
        part = max(1, min(runtime.batch_size, -(-len(pixels) // streams)))
        sized = replace(runtime, batch_size=part) if part != runtime.batch_size else runtime
        return next(sized.stream([(None, pixels)]))[1]

    def warm(self) -> None:
        """Runs every part size ``features`` uses, on every stream: the first request of a new shape
        costs extra (OpenVINO prepares its kernels for it), so no client's request pays for that."""
        if not isinstance(self.runtime, OpenVinoRuntime):  # the others take any shape as it comes
            self.features(np.zeros((1, self.maker.size, self.maker.size, 3), np.uint8))
            return
        streams = self.runtime.streams
        for part in range(1, self.runtime.batch_size + 1):
            self.features(np.zeros((part * streams, self.maker.size, self.maker.size, 3), np.uint8))
        if streams > 1 and self.options.streams is None and self.single is None:
            self.single = self._faster_single()

    def _faster_single(self) -> Runtime | None:
        """A one-stream engine (every core on one image) if it answers a lone image faster than one
        stream of the shared engine, measured here and now: on a quiet machine it is (about 1.7x on
        2 cores), on a busy one it is not (a core taken by another process stalls both threads)."""
        single = make_runtime(self.extractor, self.model_identity, replace(self.options, streams=1), self.maker.size)
        image = np.zeros((1, self.maker.size, self.maker.size, 3), np.uint8)

        def seconds(runtime: Runtime) -> float:
            start = time.perf_counter()
            next(runtime.stream([(None, image)]))
            return time.perf_counter() - start

        seconds(single)  # its first call prepares the shape
        times = np.array([(seconds(single), seconds(self.runtime)) for _ in range(5)])
        faster = np.median(times[:, 0]) < 0.9 * np.median(times[:, 1])
        log.info(f"one image: {np.median(times[:, 0]) * 1000:.0f} ms on every core, "
                 f"{np.median(times[:, 1]) * 1000:.0f} ms on one stream: {'every core' if faster else 'one stream'}")
        return single if faster else None

    def view_names(self, views: Sequence[int]) -> dict[int, str]:
        return {v: view_name(v, self.maker.seed, self.maker.policy) for v in views}

    def fill(self, split: Split, views: Sequence[int], sink: Sink, desc: str = "features") -> list[tuple[int, str]]:
        """Calls ``sink`` once per (view, distinct image) with its features; returns failures.

        Cached views come from the cache; the rest are extracted in one streaming pass
        (each image decoded once for all its missing views) and committed batch by batch.

        Returns:
            (image index, reason) for every image that could not be read or decoded.
        """
        contents = content_keys(split)
        failures = [(i, special_file(split.items[i]) or "cannot read the file")
                    for i, c in enumerate(contents) if c is None]
        groups = Groups.of(contents)
        del contents
        views = list(views)
        have = self._lookup(groups, views, sink)
        if have.all():
            return failures
        names, positions = self.view_names(views), {v: p for p, v in enumerate(views)}

        def store(tags: list[Tag], features: np.ndarray) -> None:
            self.cache.put(self.identity_key, [(names[v], task.content, f) for (task, v), f in zip(tags, features)])
            for (task, view), vector in zip(tags, features):
                sink(positions[view], groups.rows(groups.number[task.content]), vector)

        bad = self._extract(split, _tasks(groups, views, have), int((~have).sum()), store, desc)
        return failures + [(i, reason) for task, reason in bad for i in groups.rows(groups.number[task.content])]

    def _lookup(self, groups: Groups, views: list[int], sink: Sink) -> np.ndarray:
        """Sends every cached view to ``sink``; returns which (view, group) were found."""
        self.cache.register(self.identity_key, self.identity)
        have = np.zeros((len(views), len(groups.keys)), bool)
        size = math.prod(self.feature_shape)
        for position, name in enumerate(self.view_names(views).values()):
            for content, vector in self.cache.get(self.identity_key, name, groups.keys):
                if vector.size == size:  # anything else is recomputed (and replaced)
                    group = groups.number[content]
                    have[position, group] = True
                    sink(position, groups.rows(group), vector.reshape(self.feature_shape))
        return have

    def _extract(self, split: Split, tasks: Iterator[Task], total: int,
                 store: Callable[[list[Tag], np.ndarray], None], desc: str) -> list[tuple[Task, str]]:
        """Runs ``tasks`` through the executor, handing each batch to ``store``; returns failures."""
        bad: list[tuple[Task, str]] = []
        with log.progress(total=total, desc=f"{desc} ({self.executor.label(self)})") as bar:
            for tags, features in self.executor.extract(self, split, tasks, bad):
                store(tags, features)
                bar.update(len(tags))
                self.extracted += len(tags)
        return bad


def _tasks(groups: Groups, views: list[int], have: np.ndarray) -> Iterator[Task]:
    """One task per distinct image with missing views, generated lazily (bounded memory)."""
    for group in np.flatnonzero(~have.all(axis=0)):
        missing = tuple(views[p] for p in np.flatnonzero(~have[:, group]))
        yield Task(int(groups.first[group]), groups.keys[group], missing)
