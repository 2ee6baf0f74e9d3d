"""Where the feature engine's cache misses are extracted: in this process, or on a Ray cluster.

The engine finds the misses and owns the cache; an executor only turns tasks (image, content
hash, missing views) into ``(tags, features)`` batches, streamed back in any order. The driver
writes every batch into the cache itself (one writer, one transaction per batch), so any
executor leaves the same entries behind and a later run, local or not, reuses them.

``local`` (the default) runs the threaded decode + runtime pipeline here and imports no Ray;
``ray`` (``keras_transfer.features.ray_executor``) runs it in a Ray Data actor pool.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

import numpy as np

from keras_transfer.data.dataset import Split
from keras_transfer.base.errors import ConfigError, unknown_choice
from keras_transfer.features.extract import Tag, Task, extract

if TYPE_CHECKING:
    from keras_transfer.features.engine import FeatureEngine

EXECUTORS = ("local", "ray")
RAY_INSTALL = "pip install 'keras-transfer[ray]'  (or: pip install 'ray[data]>=2.40')"


class Executor(Protocol):
    """Extracts the missing views of ``tasks`` with ``engine``'s model, maker and options."""

    name: str

    def label(self, engine: FeatureEngine) -> str:
        """Shown in the progress bar, e.g. ``openvino`` or ``ray: 2 actors``."""

    def extract(self, engine: FeatureEngine, split: Split, tasks: Iterator[Task],
                failures: list[tuple[Task, str]]) -> Iterator[tuple[list[Tag], np.ndarray]]:
        """Yields ``(tags, features)`` once per extracted view; (task, reason) of undecodable images
        go to ``failures``."""


class LocalExecutor:
    """In this process: decoding threads overlapped with the engine's runtime (built here once)."""

    name = "local"

    def label(self, engine: FeatureEngine) -> str:
        return engine.runtime.name

    def extract(self, engine: FeatureEngine, split: Split, tasks: Iterator[Task],
                failures: list[tuple[Task, str]]) -> Iterator[tuple[list[Tag], np.ndarray]]:
        yield from extract(split, tasks, engine.maker, engine.runtime, failures)

    def __repr__(self) -> str:
        return "LocalExecutor()"


def check_executor(name: str, runtime: str = "auto") -> None:
    """Raises ConfigError (exit 2) for an unknown executor, or ``ray`` without Ray installed."""
    if name not in EXECUTORS:
        raise unknown_choice("executor", name, EXECUTORS)
    if name == "ray":
        if importlib.util.find_spec("ray") is None:
            raise ConfigError("--executor ray needs Ray, which is not installed", "ray[data] >= 2.40",
                              "no module named 'ray'", hint=RAY_INSTALL)
        if runtime == "keras":
            raise ConfigError("--executor ray runs the compiled engine on each worker", "--runtime auto, "
                              "openvino or onnx", "--runtime keras", hint="or use --executor local")


def make_executor(executor: str | Executor | None = "local", address: str | None = None, **options) -> Executor:
    """The executor for ``executor``: a name (``local`` / ``ray``) or an executor object, returned as is.

    Args:
        executor: ``"local"`` (None too), ``"ray"``, or an object with ``label`` and ``extract``.
        address: Ray cluster address (``ray://host:10001``, ``auto``, ``host:6379``); None connects to
            ``$RAY_ADDRESS`` if set, else starts a local Ray instance.
        **options: Passed to :class:`~keras_transfer.features.ray_executor.RayExecutor`
            (``actors``, ``cpus_per_actor``, ``batch_size``).

    Example:
        >>> make_executor("local").name
        'local'
    """
    if executor is None or executor == "local":
        return LocalExecutor()
    if not isinstance(executor, str):
        return executor
    check_executor(executor)
    from keras_transfer.features.ray_executor import RayExecutor

    return RayExecutor(address, **options)
