"""The fast, honest default, measured: ``python -m benchmarks.default_path [--only ...]``.

Cases (each timed side by side in this one run; the CPU is printed):
- ``head``: the old Keras epoch loop vs the L-BFGS solver on the same cached Lite0 features of
  CIFAR-10, 900 training images per class; held-out accuracy on 100 test images per class
  (the dataset's own test split, which neither fit looked at: the loop early-stops on a 20%
  split of the training images, the solver cross-validates inside them).
- ``train``: ``keras-transfer train`` on hymenoptera as a fresh process, with a cold feature cache
  (the compiled backbone and model template already cached, as after any first run), then
  again into a new folder with the features cached; and on the embedded digits default, with
  the raw-pixel baseline it reports.
- ``startup``: ``keras-transfer --help`` and ``train --help`` as processes.
- ``frozen``: seconds per ``--strategy frozen`` epoch vs one cold inference pass over the same
  training images on the engine.
- ``auto``: ``--strategy auto --time-budget 120`` and ``300`` on hymenoptera and flowers5 as
  processes: wall time over budget, and held-out accuracy minus the default run's (same images).
Writes ``benchmarks/results/default_path.json``.
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

import keras_transfer  # noqa: F401  (sets the Keras backend before keras is imported)
from benchmarks.data import REPO, balanced_files, cifar_root, cpu, linked_dataset

RESULTS = Path(__file__).resolve().parent / "results"
HYMENOPTERA = REPO.parent / "shared" / "datasets" / "hymenoptera_data"
CLI = [sys.executable, "-m", "keras_transfer.cli"]


def timed(argv: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in (0,):
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    return seconds, done


def case_startup(work: Path) -> list[dict]:
    rows = []
    for argv in (["--help"], ["train", "--help"]):
        seconds = min(timed(CLI + argv, dict(os.environ))[0] for _ in range(3))
        rows.append({"case": f"startup: keras-transfer {' '.join(argv)}", "seconds": seconds, "goal": "< 1.5 s",
                     "met": seconds < 1.5})
    return rows


def case_train(work: Path) -> list[dict]:
    cache = work / "cache-default"
    env = {**os.environ, "KERAS_TRANSFER_CACHE": str(cache)}
    runs = work / "runs-default"
    shutil.rmtree(runs, ignore_errors=True)
    timed(CLI + ["train", str(HYMENOPTERA), "--out", str(runs / "prime"), "-q"], env)  # compile + template, once
    shutil.rmtree(cache / "features", ignore_errors=True)
    cold, _ = timed(CLI + ["train", str(HYMENOPTERA), "--out", str(runs / "cold"), "-q", "--json"], env)
    timing = json.loads((runs / "cold" / "timing.json").read_text())
    metrics = json.loads((runs / "cold" / "metrics.json").read_text())
    warm, _ = timed(CLI + ["train", str(HYMENOPTERA), "--out", str(runs / "warm"), "-q"], env)
    digits, _ = timed(CLI + ["train", "--out", str(runs / "digits"), "-q"], env)
    digit_metrics = json.loads((runs / "digits" / "metrics.json").read_text())
    beyond = cold - timing["feature_seconds"]
    return [
        {"case": "train hymenoptera, cold features", "seconds": cold, "beyond_features_s": beyond,
         "feature_s": timing["feature_seconds"], "accuracy": metrics["accuracy"],
         "evaluated_on": f"{metrics['evaluated_on']} ({metrics['n']})", "goal": "beyond features <= 4 s, all < 20 s",
         "met": beyond <= 4 and cold < 20},
        {"case": "train hymenoptera, features cached", "seconds": warm, "goal": "<= 3 s", "met": warm <= 3},
        {"case": "train digits (embedded default)", "seconds": digits, "accuracy": digit_metrics["accuracy"],
         "baseline_accuracy": digit_metrics["baseline"]["accuracy"],
         "evaluated_on": f"{digit_metrics['evaluated_on']} ({digit_metrics['n']})",
         "goal": "< 10 s, above raw pixels",
         "met": digits < 10 and digit_metrics["accuracy"] > digit_metrics["baseline"]["accuracy"]},
    ]


def _cifar_features(work: Path, per_class: int):
    from keras_transfer.run import feature_source
    from keras_transfer.config import TrainConfig
    from keras_transfer.data.load import load_dataset

    root = cifar_root(work)
    train = linked_dataset(balanced_files(root, "train", 10 * per_class), work / f"cifar-{per_class}" / "train")
    linked_dataset(balanced_files(root, "test", 1000), work / f"cifar-{per_class}" / "test")
    config = TrainConfig(data=str(train.parent), val_fraction=0.2)
    dataset = load_dataset(config.data, val_fraction=0.2, seed=0)
    source = feature_source(config, work / f"cifar-{per_class}-run")
    return dataset, {name: source(split) for name, split in dataset.splits.items()}


def case_head(work: Path, per_class: int = 900) -> list[dict]:
    import keras

    from keras_transfer.config import TrainConfig
    from keras_transfer.backbones.heads import build_head_for
    from keras_transfer.strategies.solver import fit_linear_head
    from keras_transfer.strategies.training import fit, one_hot, options_for

    dataset, features = _cifar_features(work, per_class)
    labels = {name: dataset.splits[name].labels[idx] for name, (_, idx) in features.items()}
    x = {name: f for name, (f, _) in features.items()}
    (x_test, y_test), n = (x["test"], labels["test"]), 10
    keras.utils.set_random_seed(0)
    start = time.perf_counter()  # the old default: Keras loop, early stopping on the 20% split of train
    head = build_head_for(x["train"].shape[1:], n, TrainConfig())
    fit(head, (x["train"], one_hot(labels["train"], n)), (x["val"], one_hot(labels["val"], n)),
        options_for(TrainConfig(), 200), work / "head-checkpoints", f"head-{time.time_ns()}", labels["train"])
    keras_seconds = time.perf_counter() - start
    keras_accuracy = float((np.asarray(head.predict(x_test, verbose=0)).argmax(1) == y_test).mean())
    start = time.perf_counter()  # the new default: every training image, C by 5-fold CV inside them
    solved = fit_linear_head(np.concatenate([x["train"], x["val"]])[None], np.concatenate([labels["train"], labels["val"]]), n)
    solver_seconds = time.perf_counter() - start
    solver_accuracy = float((solved.head.predict(x_test).argmax(1) == y_test).mean())
    return [{"case": f"head fit, CIFAR-10 {per_class}/class, Keras loop", "seconds": keras_seconds,
             "accuracy": keras_accuracy, "evaluated_on": f"test ({len(y_test)})"},
            {"case": f"head fit, CIFAR-10 {per_class}/class, L-BFGS (C={solved.C:g}, {solved.folds}-fold CV on "
                     f"{solved.cv_images})",
             "seconds": solver_seconds, "accuracy": solver_accuracy, "evaluated_on": f"test ({len(y_test)})",
             "speedup": keras_seconds / solver_seconds, "goal": ">= 10x faster, <= 10 s, accuracy >= the loop's",
             "met": keras_seconds / solver_seconds >= 10 and solver_seconds <= 10 and solver_accuracy >= keras_accuracy}]


def case_frozen(work: Path) -> list[dict]:
    from keras_transfer.run import train
    from keras_transfer.run import feature_source
    from keras_transfer.config import TrainConfig
    from keras_transfer.data.load import load_dataset

    os.environ["KERAS_TRANSFER_CACHE"] = str(work / "cache-frozen")
    shutil.rmtree(work / "cache-frozen" / "features", ignore_errors=True)
    config = TrainConfig(data=str(HYMENOPTERA), strategy="frozen", epochs=4)
    dataset = load_dataset(config.data).with_selection_split(config.val_fraction, config.seed)
    source = feature_source(config, work / "frozen-pass")
    source.engine.runtime  # compile first: the pass below is inference only
    start = time.perf_counter()
    source.view(dataset.train, 0)
    one_pass = time.perf_counter() - start
    shutil.rmtree(work / "runs-frozen", ignore_errors=True)
    run = train(config, work / "runs-frozen")
    epochs = run.read("history.json")["epoch_seconds"]
    ratio = float(np.median(epochs)) / one_pass
    return [{"case": f"frozen epoch ({len(dataset.train)} hymenoptera images) / one inference pass",
             "seconds": float(np.median(epochs)), "pass_s": one_pass, "ratio": ratio,
             "accuracy": run.read("metrics.json")["accuracy"], "evaluated_on": "val (153)", "goal": "ratio <= 1.5",
             "met": ratio <= 1.5}]


FLOWERS = REPO.parent / "shared" / "datasets" / "flowers5"


def case_auto(work: Path, budgets=(120, 300)) -> list[dict]:
    """``auto --time-budget B`` as a process (start-up included) vs the default, same held-out images."""
    env = {**os.environ, "KERAS_TRANSFER_CACHE": str(work / "cache-auto")}
    rows = []
    for data in (HYMENOPTERA, FLOWERS):
        out = work / "runs-auto" / data.name
        shutil.rmtree(out, ignore_errors=True)
        timed(CLI + ["train", str(data), "--out", str(out / "default"), "-q"], env)
        default = json.loads((out / "default" / "metrics.json").read_text())
        for budget in budgets:
            seconds, _ = timed(CLI + ["train", str(data), "--strategy", "auto", "--time-budget", str(budget),
                                      "--out", str(out / f"auto{budget}"), "-q"], env)
            metrics = json.loads((out / f"auto{budget}" / "metrics.json").read_text())
            plan = json.loads((out / f"auto{budget}" / "plan.json").read_text())
            gain = metrics["accuracy"] - default["accuracy"]
            rows.append({"case": f"auto {budget} s on {data.name} (kept: {plan['kept']})", "seconds": seconds,
                         "accuracy": metrics["accuracy"], "default_accuracy": default["accuracy"],
                         "wall_over_budget": seconds / budget, "gain_over_default": gain,
                         "evaluated_on": f"{metrics['evaluated_on']} ({metrics['n']})", "phases": plan["phases"],
                         "goal": "wall/budget <= 1.1, accuracy >= default's",
                         "met": seconds / budget <= 1.1 and gain >= 0})
    return rows


CASES = {"startup": case_startup, "train": case_train, "head": case_head, "frozen": case_frozen, "auto": case_auto}


def run_cases(prog: str, description: str, cases: dict, argv: list[str] | None) -> list[dict]:
    """Parses ``--only`` / ``--work``, prints the CPU, runs the chosen cases; their rows."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--only", default=",".join(cases), help=f"comma list of {list(cases)}")
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "keras-transfer-bench")
    args = parser.parse_args(argv)
    print(f"CPU: {cpu()}")
    return [row for name in args.only.split(",") for row in cases[name](args.work)]


def write_results(name: str, rows: list[dict]) -> None:
    """``benchmarks/results/<name>.json``: the CPU and the rows."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({"cpu": cpu(), "rows": rows}, indent=2))
    print(f"wrote {RESULTS / f'{name}.json'}")


def main(argv: list[str] | None = None) -> None:
    rows = run_cases("python -m benchmarks.default_path", __doc__.splitlines()[0], CASES, argv)
    print(f"{'case':<72}{'seconds':>9}{'accuracy':>10}  goal / met")
    for row in rows:
        accuracy = f"{row['accuracy']:.4f}" if "accuracy" in row else ""
        extra = "  ".join(f"{k}={v:.2f}" for k, v in row.items() if k in ("speedup", "ratio", "beyond_features_s",
                                                                           "baseline_accuracy", "pass_s",
                                                                           "wall_over_budget", "gain_over_default",
                                                                           "default_accuracy"))
        print(f"{row['case']:<72}{row['seconds']:>9.2f}{accuracy:>10}  {row.get('goal', '')} "
              f"{'' if 'met' not in row else ('MET' if row['met'] else 'NOT MET')}  {extra}")
    write_results("default_path", rows)


if __name__ == "__main__":
    main()
