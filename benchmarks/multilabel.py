"""Several labels per image: ``python -m benchmarks.multilabel [--flip]``.

Trains the default run (a fresh ``keras-transfer train`` process, cold feature cache) on
``miml_scenes`` (labels.csv; the tool cuts a stratified 20% held-out val split, iterative
stratification) and compares its held-out figures with the issue's floor: a plain one-vs-rest
scikit-learn ``LogisticRegression`` (default C = 1, threshold 0.5) on the very same cached
features and images. Prints the CPU, a table, and writes benchmarks/results/multilabel.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.data import REPO, cpu

RESULTS = Path(__file__).resolve().parent / "results"
MIML = REPO.parent / "shared" / "datasets" / "miml_scenes"
GOALS = {"map_macro": 0.96, "f1_micro": 0.90}


def train(work: Path, extra: list[str]) -> tuple[Path, float]:
    out = work / "runs" / ("miml" + "".join(extra).replace("-", "_"))
    shutil.rmtree(out, ignore_errors=True)
    cache = work / "cache-multilabel"
    shutil.rmtree(cache / "features", ignore_errors=True)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "keras_transfer.cli", "train", str(MIML / "images"), "--labels",
                           str(MIML / "labels.csv"), "--out", str(out), "-q", *extra],
                          env={**os.environ, "KERAS_TRANSFER_CACHE": str(cache)}, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return out, time.perf_counter() - start


def plain_baseline(run: Path) -> dict:
    """One-vs-rest LogisticRegression at threshold 0.5 on the run's own cached train / val features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.preprocessing import StandardScaler

    from keras_transfer.evaluation.multilabel import multilabel_metrics
    from keras_transfer.run import Run, dataset_of

    opened = Run.open(run)
    dataset = dataset_of(opened.config)
    loaded = {}
    for name in ("train", "val"):
        with np.load(run / "features" / f"{name}.npz", allow_pickle=False) as saved:
            loaded[name] = saved["features"], dataset.splits[name].labels[saved["indices"]]
    scaler = StandardScaler().fit(loaded["train"][0])
    model = OneVsRestClassifier(LogisticRegression(max_iter=2000)).fit(scaler.transform(loaded["train"][0]),
                                                                       loaded["train"][1])
    p = model.predict_proba(scaler.transform(loaded["val"][0]))
    return multilabel_metrics(loaded["val"][1], p, opened.class_names)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.multilabel", description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "keras-transfer-bench")
    parser.add_argument("--flip", action="store_true", help="also measure the run with --flip")
    args = parser.parse_args(argv)
    print(f"CPU: {cpu()}")
    rows = []
    for extra in ([], ["--flip"]) if args.flip else ([],):
        run, seconds = train(args.work, extra)
        metrics = json.loads((run / "metrics.json").read_text())
        rows.append({"case": "keras-transfer " + (" ".join(extra) or "default"), "train_wall_s": seconds,
                     **{k: metrics[k] for k in ("map_macro", "map_micro", "f1_micro", "f1_macro", "hamming_loss",
                                                "exact_match")}, "held_out": f"{metrics['evaluated_on']}, {metrics['n']}"})
    base = plain_baseline(run)
    rows.append({"case": "plain OvR LogisticRegression, threshold 0.5 (same features)", "train_wall_s": None,
                 **{k: base[k] for k in ("map_macro", "map_micro", "f1_micro", "f1_macro", "hamming_loss",
                                         "exact_match")}, "held_out": rows[0]["held_out"]})
    print(f"{'case':<62}{'wall s':>8}{'mAP':>8}{'mAP mi':>8}{'F1 mi':>8}{'F1 ma':>8}{'Hamming':>9}{'exact':>8}  held-out")
    for r in rows:
        wall = f"{r['train_wall_s']:.1f}" if r["train_wall_s"] else "-"
        print(f"{r['case']:<62}{wall:>8}{r['map_macro']:>8.4f}{r['map_micro']:>8.4f}{r['f1_micro']:>8.4f}"
              f"{r['f1_macro']:>8.4f}{r['hamming_loss']:>9.4f}{r['exact_match']:>8.4f}  {r['held_out']}")
    met = {k: rows[0][k] >= v for k, v in GOALS.items()}
    print("goals (default run): " + ", ".join(f"{k} >= {v}: {'met' if met[k] else 'NOT met'}" for k, v in GOALS.items()))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "multilabel.json").write_text(json.dumps({"cpu": cpu(), "rows": rows, "goals": GOALS, "met": met},
                                                        indent=2))
    print(f"wrote {RESULTS / 'multilabel.json'}")


if __name__ == "__main__":
    main()
