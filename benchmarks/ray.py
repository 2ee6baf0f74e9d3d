"""The Ray executor vs the local one, side by side: ``python -m benchmarks.ray [--images 600]``.

One process extracts the same flowers5 images (a cold feature cache each time, the compiled
backbone already cached) with the local executor, then on a local Ray instance with 1 actor x 2
CPUs and 2 actors x 1 CPU. Each Ray time includes what a run pays: starting the actor pool,
compiling the engine in every actor, shipping rows and features. Printed: seconds, images/s,
overhead vs local, max feature difference vs local, and the Ray start-up itself. Writes
``benchmarks/results/ray.json``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import numpy as np

import keras_transfer  # noqa: F401  (sets the Keras backend before keras is imported)
from benchmarks.data import REPO
from benchmarks.default_path import run_cases, write_results

FLOWERS = REPO.parent / "shared" / "datasets" / "flowers5"
WARM_PARTS = ("weights", "onnx", "openvino", "templates")
IMAGES = 600


def _split(count: int):
    from keras_transfer.data.dataset import Split

    files = sorted(p for p in FLOWERS.rglob("*") if p.is_file())
    step = max(1, len(files) // count)
    files = files[::step][:count]
    return Split("bench", files, np.zeros(len(files), np.int64))


def _extract(work: Path, name: str, split, executor) -> tuple[float, np.ndarray]:
    """Seconds to extract ``split`` from a cold feature cache (warm compiled backbone), and the features."""
    from keras_transfer.config import TrainConfig
    from keras_transfer.run import feature_source

    root, warm = work / "ray-bench" / name, work / "ray-bench" / "warm"
    if root != warm:  # the warm root keeps the exported, compiled backbone between benchmark runs
        shutil.rmtree(root, ignore_errors=True)
        for part in WARM_PARTS:
            if (warm / part).is_dir():
                shutil.copytree(warm / part, root / part)
    os.environ["KERAS_TRANSFER_CACHE"] = str(root)
    source = feature_source(TrainConfig(data=str(FLOWERS)), root / "run", executor=executor)
    start = time.perf_counter()
    features, _ = source.view(split, 0)
    return time.perf_counter() - start, features


def case_executors(work: Path) -> list[dict]:
    import ray

    from keras_transfer.features.ray_executor import RayExecutor, connect

    split = _split(IMAGES)
    _extract(work, "warm", _split(8), "local")  # export + compile once, cached
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    local_s, reference = _extract(work, "local", split, "local")
    rows = [{"case": f"local executor, {len(split)} images", "seconds": local_s, "images_per_s": len(split) / local_s}]
    start = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, object_store_memory=300 * 1024**2,
             logging_level="WARNING", log_to_driver=False)
    connect()
    rows.append({"case": "ray.init (local instance, once per process)", "seconds": time.perf_counter() - start})
    for actors, cpus in ((1, float(os.cpu_count())), (2, os.cpu_count() / 2)):
        seconds, features = _extract(work, f"ray{actors}", split, RayExecutor(actors=actors, cpus_per_actor=cpus))
        rows.append({"case": f"ray executor, {actors} actor(s) x {cpus:g} CPU, {len(split)} images",
                     "seconds": seconds, "images_per_s": len(split) / seconds,
                     "overhead": seconds / local_s - 1,
                     "max_rel_diff": float(np.abs(features - reference).max() / np.abs(reference).max())})
    ray.shutdown()
    return rows


def main(argv: list[str] | None = None) -> None:
    global IMAGES
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--images", type=int, default=IMAGES)
    known, rest = parser.parse_known_args(argv)
    IMAGES = known.images
    rows = run_cases("python -m benchmarks.ray", __doc__.splitlines()[0], {"executors": case_executors}, rest)
    print(f"{'case':<60}{'seconds':>9}{'img/s':>9}{'overhead':>10}{'max rel diff':>14}")
    for row in rows:
        rate = f"{row['images_per_s']:.1f}" if "images_per_s" in row else ""
        overhead = f"{row['overhead']:+.0%}" if "overhead" in row else ""
        diff = f"{row['max_rel_diff']:.1e}" if "max_rel_diff" in row else ""
        print(f"{row['case']:<60}{row['seconds']:>9.2f}{rate:>9}{overhead:>10}{diff:>14}")
    write_results("ray", rows)


if __name__ == "__main__":
    main()
