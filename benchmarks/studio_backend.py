"""The studio's workspace timed below the web layer: ``python -m benchmarks.studio_backend [--work DIR]``.

On a flowers5 run (EfficientNet-Lite0 with its default 4 pooled stages, the solved head; trained
once into the work folder; 3,453 training and 864 held-out images), in one process, warm (the
features in the shared cache, the modules imported, one refit done before the timed one):
- ``refit``: 10 fixes (5 relabelled, 5 excluded training images), then ``Workspace.refit``: a
  new run folder from the cached features (goal <= 3 s);
- ``add_class``: 50 photos of bees (hymenoptera ``train/bees``) as a new class; the new
  images' extraction is timed apart (the first time; cache hits after) and the goal is the rest
  (<= 10 s);
- ``cam``: ``Workspace.cam_png`` of one held-out image, the first call (builds and exports the
  maps model once per backbone) and the median of 5 warm calls (goal <= 1 s);
- ``neighbours``: 8 nearest training images of one image, warm.
Rows also carry the load average and the CPU time of the process (``cpu_s``: all its threads), since
the machine may be shared: on a loaded machine the wall time is several times the CPU time. ``benchmarks/studio.py``
calls ``rows(work)``. Writes ``benchmarks/results/studio_backend.json``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from pathlib import Path

import keras_transfer  # noqa: F401  (sets the Keras backend before keras is imported)
from benchmarks.default_path import FLOWERS, HYMENOPTERA, run_cases, write_results


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def _run(work: Path) -> Path:
    """The flowers5 Lite0 run (trained once; reused while it is complete)."""
    from keras_transfer.config import TrainConfig
    from keras_transfer.run import Run, train
    from keras_transfer.run.folder import Files

    out = work / "studio-backend" / "flowers5-lite0"
    if not (out / Files.CONFIG).is_file():
        train(TrainConfig(data=str(FLOWERS), backbone="efficientnet_lite0"), out)
    return Run.open(out).path


def _workspace(work: Path, name: str):
    from keras_transfer.studio.workspace import Workspace

    root = work / "studio-backend" / name
    shutil.rmtree(root, ignore_errors=True)
    return Workspace.open(FLOWERS, _run(work), root=root)


def case_refit(work: Path) -> list[dict]:
    ws = _workspace(work, "ws-refit")
    train = [row["id"] for row in ws.images() if row["split"] == "train"]
    ws.fix(train[:2], "exclude")
    ws.refit()  # warm-up: imports, the folder listing, the run's features
    chosen = train[100:1100:100]  # 10 images over the classes
    ws.fix(chosen[:5], "relabel", ws.class_names()[0])
    ws.fix(chosen[5:], "exclude")
    start, cpu = time.perf_counter(), time.process_time()
    result = ws.refit()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return [{"case": "refit after 10 fixes, flowers5 (lite0, 3,453 training images), warm", "seconds": seconds,
             "goal": "<= 3 s", "met": seconds <= 3.0, "accuracy_before": result["accuracy"]["before"],
             "accuracy_after": result["accuracy"]["after"], "cpu_s": cpu, "held_out": result["held_out"],
             "load": _load()}]


def case_add_class(work: Path) -> list[dict]:
    ws = _workspace(work, "ws-add")
    ws.refit()  # warm-up
    bees = work / "studio-backend" / "bees-50"
    if not bees.is_dir():
        bees.mkdir(parents=True)
        for path in sorted((HYMENOPTERA / "train" / "bees").glob("*.jp*g"))[:50]:
            shutil.copy(path, bees / path.name)
    start, cpu = time.perf_counter(), time.process_time()
    result = ws.add_class("bee", bees)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    rest = seconds - result["extraction_seconds"]
    bee = next(row for row in result["per_class"] if row["class"] == "bee")
    return [{"case": "add a class of 50 images to flowers5, excluding their extraction, warm", "seconds": rest,
             "goal": "<= 10 s", "met": rest <= 10.0, "extraction_s": result["extraction_seconds"],
             "total_s": seconds, "cpu_s": cpu, "accuracy_before": result["accuracy"]["before"],
             "accuracy_after": result["accuracy"]["after"], "bee_recall": bee["after"]["recall"], "load": _load()}]


def case_cam(work: Path) -> list[dict]:
    ws = _workspace(work, "ws-cam")
    held_out = [row["id"] for row in ws.images() if row["split"] == "val"]
    start = time.perf_counter()
    ws.cam_png(held_out[0])
    first = time.perf_counter() - start
    times = []
    for image in held_out[1:6]:
        start = time.perf_counter()
        ws.cam_png(image)
        times.append(time.perf_counter() - start)
    warm = statistics.median(times)
    start = time.perf_counter()
    ws.neighbours(held_out[0])
    neighbours_first = time.perf_counter() - start
    start = time.perf_counter()
    ws.neighbours(held_out[1])
    neighbours = time.perf_counter() - start
    return [{"case": "heat map (exact CAM) of one held-out image, warm (median of 5)", "seconds": warm,
             "goal": "<= 1 s", "met": warm <= 1.0, "first_call_s": first, "load": _load()},
            {"case": "8 nearest training images of one image, warm", "seconds": neighbours,
             "first_call_s": neighbours_first, "load": _load()}]


CASES = {"refit": case_refit, "add_class": case_add_class, "cam": case_cam}


def rows(work: Path) -> list[dict]:
    """Every case's rows (what ``benchmarks/studio.py`` shows beside its own)."""
    return [row for case in CASES.values() for row in case(work)]


def main(argv: list[str] | None = None) -> None:
    results = run_cases("python -m benchmarks.studio_backend", __doc__.splitlines()[0], CASES, argv)
    print(f"{'case':<72}{'seconds':>9}  goal / met  details")
    for row in results:
        met = "" if "met" not in row else ("MET" if row["met"] else "NOT MET")
        details = "  ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                            if k not in ("case", "seconds", "goal", "met", "held_out"))
        print(f"{row['case']:<72}{row['seconds']:>9.2f}  {row.get('goal', '')} {met}  {details}")
    write_results("studio_backend", results)


if __name__ == "__main__":
    main()
