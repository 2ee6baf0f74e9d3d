"""The feature engine: cached views first, then only the missing ones through the runtime."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from keras_transfer import log
from keras_transfer.data.augment import view_name
from keras_transfer.data.dataset import Split
from keras_transfer.features.cache import FeatureCache
from keras_transfer.features.extract import Task, ViewMaker, extract
from keras_transfer.features.keys import content_keys, identity_hash
from keras_transfer.features.runtime import Runtime, RuntimeOptions, make_runtime

# sink(view position, image indices sharing one content, feature vector)
Sink = Callable[[int, np.ndarray, np.ndarray], None]


@dataclass
class FeatureEngine:
    """Extracts views of images through the shared cache; the runtime is built only on a miss.

    Attributes:
        extractor: Keras model, uint8 (B, S, S, 3) -> (B, D) features.
        model_identity: What defines the extractor (backbone, weights hash, size, pooling, ...).
        maker: Decoding, resizing and augmentation (its resize mode and seed are part of the key).
        options: Runtime, precision and batching.
        cache: The shared feature cache.
        extracted: Views computed by the runtime so far (cache misses).
    """

    extractor: object
    model_identity: dict
    maker: ViewMaker
    options: RuntimeOptions = RuntimeOptions()
    cache: FeatureCache = field(default_factory=FeatureCache)
    extracted: int = 0

    @property
    def identity(self) -> dict:
        """Everything the features depend on except the image and the view."""
        return {**self.model_identity, "resize": self.maker.resize_mode, "precision": self.options.precision}

    @cached_property
    def runtime(self) -> Runtime:
        """The inference runtime, built (exported, compiled) on first use only."""
        return make_runtime(self.extractor, self.model_identity, self.options)

    @property
    def identity_key(self) -> str:
        return identity_hash(self.identity)

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
        failures = [(i, "cannot read the file") for i, c in enumerate(contents) if c is None]
        groups = _group(contents)
        missing = self._lookup(groups, list(views), sink)
        tasks = [Task(int(groups[c][0]), c, tuple(vs)) for c, vs in missing.items() if vs]
        if tasks:
            positions = {v: p for p, v in enumerate(views)}
            bad = self._extract(split, tasks, lambda view, content, vector:
                                sink(positions[view], groups[content], vector), desc)
            failures += [(int(i), reason) for task, reason in bad for i in groups[task.content]]
        return failures

    def _lookup(self, groups: dict[str, np.ndarray], views: list[int], sink: Sink) -> dict[str, list[int]]:
        """Sends every cached view to ``sink``; returns the missing view numbers per content."""
        self.cache.register(self.identity_key, self.identity)
        missing: dict[str, list[int]] = {c: [] for c in groups}
        for position, (view, name) in enumerate(self.view_names(views).items()):
            found = set()
            for content, vector in self.cache.get(self.identity_key, name, list(groups)):
                sink(position, groups[content], vector)
                found.add(content)
            for content in groups.keys() - found:
                missing[content].append(view)
        return missing

    def _extract(self, split: Split, tasks: list[Task], sink: Callable[[int, str, np.ndarray], None],
                 desc: str) -> list[tuple[Task, str]]:
        """Runs ``tasks`` through the runtime, committing each batch to the cache; returns failures."""
        runtime, ident, bad = self.runtime, self.identity_key, []
        names = self.view_names(sorted({v for t in tasks for v in t.views}))
        with log.progress(total=sum(len(t.views) for t in tasks), desc=f"{desc} ({runtime.name})") as bar:
            for tags, features in extract(split, tasks, self.maker, runtime, bad):
                self.cache.put(ident, [(names[v], task.content, f) for (task, v), f in zip(tags, features)])
                for (task, view), vector in zip(tags, features):
                    sink(view, task.content, vector)
                bar.update(len(tags))
                self.extracted += len(tags)
        return bad


def _group(contents: list[str | None]) -> dict[str, np.ndarray]:
    """Content hash -> indices of the images with those bytes (duplicates share one entry)."""
    groups: dict[str, list[int]] = {}
    for i, content in enumerate(contents):
        if content is not None:
            groups.setdefault(content, []).append(i)
    return {c: np.asarray(ix) for c, ix in groups.items()}
