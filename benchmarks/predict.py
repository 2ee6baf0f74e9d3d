"""Keras-free predict and unknown rejection, measured: ``python -m benchmarks.predict [--only ...]``.

Cases (side by side in one run, CPU printed; every predict runs with a cold feature cache and
the backbone's compiled engine cached, as on any machine after its first run):
- ``process``: ``keras-transfer predict`` of one image, and of hymenoptera's 153 ``val/``
  images, as whole processes (start-up included): wall time, images/s, peak RSS; then 4,317
  flowers5 images, to show peak RSS does not grow with the number of images.
- ``vs_keras``: ``keras-transfer predict`` of the 153 images vs a Keras process predicting them
  with the run's ``model.keras`` (same decoding), whole processes side by side, alternated
  (goal >= 10x); top-1 agreement of the two.
- ``engine_vs_keras``: the same 153 images through the run's engine + NumPy head vs the saved
  ``model.keras`` (Keras ``predict_on_batch``, batches of 32), in this process.
- ``near``: a flowers5 run trained on four classes, the fifth shown as unknown: AUROC and FPR
  at 95% TPR of the k-NN score vs the maximum softmax probability (far outliers: ``evaluate
  --outliers`` in the tests).
Writes ``benchmarks/results/predict.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.data import REPO
from benchmarks.default_path import CLI, run_cases, write_results

RESULTS = Path(__file__).resolve().parent / "results"
DATASETS = REPO.parent / "shared" / "datasets"
HYMENOPTERA, FLOWERS = DATASETS / "hymenoptera_data", DATASETS / "flowers5"


def _run(work: Path, env: dict) -> Path:
    run = work / "runs-predict" / "ants"
    if not (run / "head.npz").exists():
        subprocess.run(CLI + ["train", str(HYMENOPTERA), "--out", str(run), "-q"], env=env, check=True)
    return run


def case_process(work: Path) -> list[dict]:
    cache = work / "cache-predict"
    env = {**os.environ, "KERAS_TRANSFER_CACHE": str(cache)}
    run = _run(work, env)
    rows = []
    one = sorted((HYMENOPTERA / "val" / "bees").iterdir())[0]
    for name, inputs, count in (("one image", [one], 1), ("hymenoptera val", [HYMENOPTERA / "val"], 153),
                                ("flowers5", [FLOWERS], 4317)):
        shutil.rmtree(cache / "features", ignore_errors=True)  # cold features; the compiled engine stays
        # each in a fresh interpreter so RUSAGE_CHILDREN's maximum is this process's own
        code = ("import resource, subprocess, sys, time\n"
                f"start = time.perf_counter()\nsubprocess.run({CLI + ['predict', str(run), *map(str, inputs), '-q', '--output', str(work / 'p.csv')]!r}, check=True)\n"
                "print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)")
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        seconds, rss = map(float, done.stdout.split())
        goal = {1: ("<= 1.5 s", seconds <= 1.5), 153: (">= 60 img/s, RSS <= 1 GB", count / seconds >= 60 and rss <= 1024)}
        row = {"case": f"predict {name} ({count} images) as a process", "seconds": seconds, "images_per_s": count / seconds,
               "peak_rss_mb": rss}
        if count in goal:
            row.update(goal=goal[count][0], met=goal[count][1])
        rows.append(row)
    rows[-1].update(goal="peak RSS flat from 153 to 4,317 images (within 25%)",
                    met=rows[-1]["peak_rss_mb"] <= 1.25 * rows[-2]["peak_rss_mb"])
    return rows


# The Keras side of ``vs_keras``: a whole process that loads model.keras and predicts the same
# files decoded by the same function (``read_batch``), batches of 32, writing its probabilities.
KERAS_PROCESS = """
import sys
import numpy as np
import keras_transfer
from keras_transfer.data.images import read_batch
from keras_transfer.run import Run, RunModel, collect_images
run = Run.open(sys.argv[1])
model = run.model
size = RunModel.open(run).size  # the side the run's images are resized to (model.keras resizes any)
paths, _ = collect_images([sys.argv[2]])
out = []
for i in range(0, len(paths), 32):
    _, images, _ = read_batch(paths[i:i + 32], size, run.config.resize)
    out.append(np.asarray(model.predict_on_batch(np.stack(images))))
np.save(sys.argv[3], np.concatenate(out))
"""


def _process(argv: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def case_vs_keras(work: Path, rounds: int = 2) -> list[dict]:
    """``keras-transfer predict`` vs a Keras ``predict`` process of the same run's model.keras, on the
    153 hymenoptera val images, whole processes (start-up included), alternated ``rounds`` times
    (the best of each kept: the machine's other load inflates both)."""
    import csv

    import numpy as np

    cache = work / "cache-predict"
    env = {**os.environ, "KERAS_TRANSFER_CACHE": str(cache)}
    run = _run(work, env)
    val = HYMENOPTERA / "val"
    ours_argv = CLI + ["predict", str(run), str(val), "-q", "--output", str(work / "vs-keras.csv")]
    keras_argv = [sys.executable, "-c", KERAS_PROCESS, str(run), str(val), str(work / "vs-keras.npy")]
    ours, theirs = [], []
    for _ in range(rounds):
        shutil.rmtree(cache / "features", ignore_errors=True)  # cold features; the compiled engine stays
        ours.append(_process(ours_argv, env))
        theirs.append(_process(keras_argv, env))
    with open(work / "vs-keras.csv") as handle:
        labels = [row["label"] for row in csv.DictReader(handle)]
    names = json.loads((run / "class_names.json").read_text())
    keras_labels = [names[int(i)] for i in np.load(work / "vs-keras.npy").argmax(1)]
    agree = float(np.mean([a == b for a, b in zip(labels, keras_labels)])) if len(labels) == len(keras_labels) else 0.0
    ratio = min(theirs) / min(ours)
    return [{"case": "predict 153 images, process: keras-transfer (engine) vs Keras model.keras", "seconds": min(ours),
             "keras_seconds": min(theirs), "all_seconds": ours, "all_keras_seconds": theirs, "speedup": ratio,
             "top1_agreement": agree, "load_avg": os.getloadavg()[0], "goal": ">= 10x", "met": ratio >= 10}]


def case_engine_vs_keras(work: Path) -> list[dict]:
    import numpy as np

    from keras_transfer.run import collect_images
    from keras_transfer.data.images import read_batch
    from keras_transfer.run import Run, RunModel

    cache = work / "cache-predict"
    os.environ["KERAS_TRANSFER_CACHE"] = str(cache)
    run = Run.open(_run(work, dict(os.environ)))
    paths, _ = collect_images([HYMENOPTERA / "val"])
    predictor = RunModel.open(run)
    predictor.source.engine.runtime  # compile first: both sides are timed warm
    shutil.rmtree(cache / "features", ignore_errors=True)
    predictor.source.engine.cache = type(predictor.source.engine.cache)()  # a fresh, empty cache
    start = time.perf_counter()
    ours = predictor.predict_files(paths)[0].probabilities
    engine = time.perf_counter() - start
    model = run.model
    size = predictor.size
    model.predict_on_batch(np.zeros((1, size, size, 3), np.uint8))  # warm-up
    start = time.perf_counter()
    theirs = []
    for i in range(0, len(paths), 32):
        _, images, _ = read_batch(paths[i:i + 32], size, run.config.resize)
        theirs.append(np.asarray(model.predict_on_batch(np.stack(images))))
    keras_seconds = time.perf_counter() - start
    agree = float(np.mean(np.concatenate(theirs).argmax(1) == ours.argmax(1)))
    ratio = keras_seconds / engine
    return [{"case": "153 images: engine + NumPy head vs Keras model.keras predict", "seconds": engine,
             "keras_seconds": keras_seconds, "speedup": ratio, "top1_agreement": agree,
             "goal": ">= 10x", "met": ratio >= 10}]


def case_near(work: Path) -> list[dict]:
    from keras_transfer.run import evaluate_outliers, train
    from keras_transfer.config import TrainConfig

    os.environ["KERAS_TRANSFER_CACHE"] = str(work / "cache-predict")
    rows = []
    classes = sorted(p.name for p in FLOWERS.iterdir() if p.is_dir())
    for left_out in classes[:2]:
        data = work / "flowers-without" / left_out
        for name in classes:
            if name != left_out and not (data / name).exists():
                (data / name).parent.mkdir(parents=True, exist_ok=True)
                (data / name).symlink_to(FLOWERS / name)
        run = train(TrainConfig(data=str(data)), work / "runs-near" / left_out)
        report = evaluate_outliers(run, FLOWERS / left_out)
        rows.append({"case": f"near outliers: flowers5 without {left_out}, {left_out} as unknown",
                     "seconds": 0.0, "knn_auroc": report["knn"]["auroc"], "msp_auroc": report["max_softmax"]["auroc"],
                     "energy_auroc": report["energy"]["auroc"], "energy_fpr95": report["energy"]["fpr_at_95_tpr"],
                     "knn_fpr95": report["knn"]["fpr_at_95_tpr"], "msp_fpr95": report["max_softmax"]["fpr_at_95_tpr"],
                     "flagged": report["knn"]["outliers_flagged"], "known_rejected": report["knn"]["known_rejected"]})
    return rows


CASES = {"process": case_process, "vs_keras": case_vs_keras, "engine_vs_keras": case_engine_vs_keras, "near": case_near}


def main(argv: list[str] | None = None) -> None:
    rows = run_cases("python -m benchmarks.predict", __doc__.splitlines()[0], CASES, argv)
    for row in rows:
        figures = "  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in row.items() if k not in ("case", "goal", "met"))
        verdict = "" if "met" not in row else ("MET" if row["met"] else "NOT MET")
        print(f"{row['case']:<64} {figures}  {row.get('goal', '')} {verdict}")
    write_results("predict", rows)


if __name__ == "__main__":
    main()
