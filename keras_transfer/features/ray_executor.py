"""The Ray executor: the engine's cache misses through a Ray Data actor pool (``map_batches``).

Only the misses go out: one row per image (its path, or its pixels for array datasets, its
content hash and its missing views) in a Ray Dataset. Each actor builds the engine's compiled
runtime once (the same ONNX file, shipped through the object store, the same backbone identity
and precision) and runs the same threaded decode + inference pipeline as the local executor on
its batches. Feature batches stream back to the driver, which alone writes the cache.

Faults: Ray restarts a killed actor and retries its batches (``max_restarts``,
``max_task_retries``); a batch delivered twice is dropped by the driver, so every (view,
content) is handed over exactly once. Ray is imported only in this module.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from keras_transfer.base import log
from keras_transfer.data.dataset import Split
from keras_transfer.base.errors import ConfigError
from keras_transfer.features.extract import Tag, Task, ViewMaker, extract
from keras_transfer.features.runtime import Runtime, RuntimeOptions, onnx_runtime, openvino_runtime

MAX_RESTARTS = 4  # per actor; a worker that keeps dying fails the run instead of looping forever
MAX_TASK_RETRIES = 4  # per batch, on actor death


def connect(address: str | None = None) -> None:
    """Connects to Ray once per process: ``address``, else ``$RAY_ADDRESS``, else a new local instance."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    where = address or os.environ.get("RAY_ADDRESS")
    log.info(f"connecting to Ray at {where}" if where else "starting a local Ray instance (set --ray-address or "
             "$RAY_ADDRESS to use a cluster)")
    try:
        ray.init(address=where, include_dashboard=False, logging_level=logging.WARNING,
                 configure_logging=True, log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError) as error:
        raise ConfigError("cannot connect to the Ray cluster", "a running cluster at --ray-address or $RAY_ADDRESS",
                          f"{where}: {error}", hint="start one with `ray start --head`, or omit --ray-address "
                                                   "to start a local instance") from error


def _quiet_ray_data() -> None:
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False  # the driver shows one keras-transfer progress bar
    context.print_on_execution_start = False
    logger = logging.getLogger("ray.data")
    logger.setLevel(logging.WARNING)
    for handler in logger.handlers:  # records of its child loggers meet the handlers' filters only
        if not any(isinstance(f, _NoProgressNotice) for f in handler.filters):
            handler.addFilter(_NoProgressNotice())


FAILED = -(2**62)  # the view number of a row that reports an undecodable image (views are >= -1)


class _NoProgressNotice(logging.Filter):
    """Drops Ray Data's notice that its progress bars are off (they are, on purpose)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Progress bars disabled" not in record.getMessage()


class _Extractor:
    """One actor of the pool: the compiled runtime, built once, then batch after batch."""

    def __init__(self, model: list, path: str, maker: ViewMaker, options: RuntimeOptions, name: str):
        import ray

        if not Path(path).is_file():  # another node: the file travelled through the object store
            path = str(Path(tempfile.mkdtemp(prefix="keras-transfer-")) / Path(path).name)
            Path(path).write_bytes(ray.get(model[0]))
        self.maker, self.runtime = maker, _runtime(name, path, maker.size, options)

    def __call__(self, batch: dict) -> dict:
        items = list(batch["pixels"]) if "pixels" in batch else [Path(p) for p in batch["path"]]
        split = Split("ray", np.stack(items) if "pixels" in batch else items, np.zeros(len(items), np.int64))
        tasks = [Task(i, str(c), tuple(int(v) for v in str(views).split(",")))
                 for i, (c, views) in enumerate(zip(batch["content"], batch["views"]))]
        failures: list[tuple[Task, str]] = []
        contents, views, chunks = [], [], []
        for tags, features in extract(split, tasks, self.maker, self.runtime, failures):
            contents += [task.content for task, _ in tags]
            views += [view for _, view in tags]
            chunks.append(features.reshape(len(features), -1))
        width = chunks[0].shape[1] if chunks else 1
        contents += [task.content for task, _ in failures]
        views += [FAILED] * len(failures)
        chunks.append(np.zeros((len(failures), width), np.float32))
        errors = [""] * (len(contents) - len(failures)) + [reason for _, reason in failures]
        return {"content": np.asarray(contents, dtype=object), "view": np.asarray(views, np.int64),
                "features": np.concatenate(chunks).astype(np.float32, copy=False),
                "error": np.asarray(errors, dtype=object), "pid": np.full(len(contents), os.getpid(), np.int64)}


def _runtime(name: str, path: str, size: int, options: RuntimeOptions) -> Runtime:
    """The runtime the local engine would build from the same file (``auto``: OpenVINO, else ONNX Runtime)."""
    if name in ("auto", "openvino"):
        try:
            return openvino_runtime(path, size, options)
        except ConfigError:
            raise
        except Exception:
            if name == "openvino":
                raise
    return onnx_runtime(path, options)


class RayExecutor:
    """Extraction on a Ray cluster through a fixed-size Ray Data actor pool.

    Args:
        address: Cluster address; None: ``$RAY_ADDRESS``, else a new local instance.
        actors: Actors in the pool (default: the cluster's CPUs / ``cpus_per_actor``).
        cpus_per_actor: CPUs each actor reserves and runs inference threads on (default 2, at
            most the cluster's CPUs).
        batch_size: Images per ``map_batches`` call.

    Attributes:
        workers: Process ids of the actors that delivered batches (a restarted actor adds one).
        duplicates: Rows delivered again by a retried batch, dropped.

    Example:
        >>> source = FeatureSource(extractor, identity, run / "features", executor=RayExecutor())  # doctest: +SKIP
    """

    name = "ray"

    def __init__(self, address: str | None = None, actors: int | None = None, cpus_per_actor: float | None = None,
                 batch_size: int = 64):
        self.address, self.actors, self.cpus_per_actor, self.batch_size = address, actors, cpus_per_actor, batch_size
        self.workers: set[int] = set()
        self.duplicates = 0

    def __repr__(self) -> str:
        return f"RayExecutor(address={self.address!r}, actors={self.actors}, cpus_per_actor={self.cpus_per_actor})"

    def pool(self) -> tuple[int, float]:
        """(actors, CPUs per actor) on the connected cluster."""
        import ray

        connect(self.address)
        cpus = max(1.0, float(ray.cluster_resources().get("CPU", 1)))
        per_actor = min(self.cpus_per_actor or 2.0, cpus)
        return self.actors or max(1, int(cpus // per_actor)), per_actor

    def label(self, engine) -> str:
        actors, per_actor = self.pool()
        return f"ray: {actors} actor{'s' * (actors > 1)} x {per_actor:g} CPU"

    def extract(self, engine, split: Split, tasks: Iterator[Task],
                failures: list[tuple[Task, str]]) -> Iterator[tuple[list[Tag], np.ndarray]]:
        import ray

        pending = {task.content: task for task in tasks}
        if not pending:
            return
        actors, per_actor = self.pool()
        _quiet_ray_data()
        dataset = ray.data.from_items(_rows(split, pending.values()))
        with warnings.catch_warnings():  # Ray 2.60 names no parameter for these yet (ray_remote_args)
            warnings.filterwarnings("ignore", "`ray_remote_args` is deprecated")
            results = dataset.map_batches(
                _Extractor, batch_size=self.batch_size, batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=per_actor,
                fn_constructor_kwargs=self._constructor(engine, per_actor),
                max_restarts=MAX_RESTARTS, max_task_retries=MAX_TASK_RETRIES)
        done: set[tuple[str, int]] = set()
        for batch in results.iter_batches(batch_size=None, batch_format="numpy"):
            self.workers.update(int(p) for p in np.unique(batch["pid"]))
            tags, keep = [], []
            for row, (content, view, error) in enumerate(zip(batch["content"], batch["view"], batch["error"])):
                key = (str(content), int(view))
                if key in done:
                    self.duplicates += 1
                    continue
                done.add(key)
                if view == FAILED:
                    failures.append((pending[key[0]], str(error)))
                else:
                    tags.append((pending[key[0]], key[1]))
                    keep.append(row)
            if tags:
                yield tags, batch["features"][keep].reshape(len(keep), *engine.feature_shape)

    def _constructor(self, engine, per_actor: float) -> dict:
        """What every actor gets: the exported ONNX file (path and bytes), the maker, the options."""
        import ray

        from keras_transfer.features.export import export_onnx

        path = export_onnx(engine.extractor, engine.model_identity)
        options = engine.options
        threads = options.threads or max(1, int(per_actor))
        actor_options = RuntimeOptions(options.runtime, options.precision, options.batch_size,
                                       options.streams, threads)
        return {"model": [ray.put(path.read_bytes())], "path": str(path), "maker": engine.maker,
                "options": actor_options, "name": options.runtime}


def _rows(split: Split, tasks) -> list[dict]:
    """One Dataset row per task: the file path (or the pixels), the content hash, the views."""
    rows = []
    for task in tasks:
        row = {"content": task.content, "views": ",".join(map(str, task.views))}
        if split.is_array:
            row["pixels"] = np.asarray(split.items[task.index])
        else:
            row["path"] = str(split.items[task.index])
        rows.append(row)
    return rows
