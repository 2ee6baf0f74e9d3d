"""The feature engine: cached views first, then only the missing ones through the runtime."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

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
    _runtime: Runtime | None = field(default=None, repr=False)

    @property
    def identity(self) -> dict:
        """Everything the features depend on except the image and the view."""
        return {**self.model_identity, "resize": self.maker.resize_mode, "precision": self.options.precision}

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            self._runtime = make_runtime(self.extractor, self.model_identity, self.options)
        return self._runtime

    def fill(self, split: Split, views: Sequence[int], sink: Sink, desc: str = "features") -> list[tuple[int, str]]:
        """Calls ``sink`` once per (view, distinct image) with its features; returns failures.

        Cached views come from the cache; the rest are extracted in one streaming pass
        (each image decoded once for all its missing views) and committed batch by batch.

        Returns:
            (image index, reason) for every image that could not be read or decoded.
        """
        contents = content_keys(split)
        failures = [(i, "cannot read the file") for i, c in enumerate(contents) if c is None]
        groups: dict[str, list[int]] = {}
        for i, content in enumerate(contents):
            if content is not None:
                groups.setdefault(content, []).append(i)
        groups_np = {c: np.asarray(ix) for c, ix in groups.items()}
        ident = identity_hash(self.identity)
        self.cache.register(ident, self.identity)
        names = [view_name(v, self.maker.seed, self.maker.policy) for v in views]
        missing = {c: [] for c in groups}
        for position, name in enumerate(names):
            found = set()
            for content, vector in self.cache.get(ident, name, list(groups)):
                sink(position, groups_np[content], vector)
                found.add(content)
            for content in groups.keys() - found:
                missing[content].append(position)
        tasks = [Task(groups[c][0], c, tuple(views[p] for p in ps)) for c, ps in missing.items() if ps]
        if tasks:
            def content_sink(position: int, content: str, vector: np.ndarray) -> None:
                sink(position, groups_np[content], vector)

            bad = self._extract(split, tasks, dict(zip(views, range(len(views)))), content_sink, desc)
            failures += [(i, reason) for task, reason in bad for i in groups[task.content]]
            self.extracted += sum(len(t.views) for t in tasks)
        return failures

    def _extract(self, split: Split, tasks: list[Task], positions: dict[int, int],
                 sink: Callable[[int, str, np.ndarray], None], desc: str) -> list[tuple[Task, str]]:
        """Runs ``tasks`` through the runtime, committing each batch to the cache."""
        runtime, ident, bad = self.runtime, identity_hash(self.identity), []
        name = {v: view_name(v, self.maker.seed, self.maker.policy) for v in positions}
        with log.progress(total=sum(len(t.views) for t in tasks), desc=f"{desc} ({runtime.name})") as bar:
            for tags, features in extract(split, tasks, self.maker, runtime, bad):
                self.cache.put(ident, [(name[v], task.content, f) for (task, v), f in zip(tags, features)])
                for (task, view), vector in zip(tags, features):
                    sink(positions[view], task.content, vector)
                bar.update(len(tags))
        return bad
