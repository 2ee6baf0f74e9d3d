"""Strategy benchmark: ``python -m benchmarks.strategies [--only bottleneck,finetune,...]``.

The issue-5 bars, each as a fresh ``keras-transfer train`` process timed end to end:
CIFAR-10 with 100 training images per class (80 train + 20 val; bottleneck_refit then trains
the head again on all 100) evaluated on 100 test images per class, for bottleneck, finetune
(every block; finetune_top2: the top 2 on cached activations), frozen and scratch; flowers5
(stratified 80/20) with ``auto`` and a 5-minute budget. Each case extracts its features afresh.
Prints the tutorials' comparison table and writes JSON to benchmarks/results/strategies.json.
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

from benchmarks.data import REPO, cifar_root

RESULTS = Path(__file__).resolve().parent / "results"
FLOWERS = REPO.parent / "shared" / "datasets" / "flowers5"
CIFAR = ["{cifar}", "--max-per-class", "100"]
CASES = {
    "bottleneck": ["{cifar}", "--max-per-class", "100", "--strategy", "bottleneck"],
    "cifar_1stage": [*CIFAR, "--stages", "1"],
    "cifar_flip": [*CIFAR, "--flip"],
    "cifar_lite2": [*CIFAR, "--backbone", "lite2"],
    "cifar_lite2_flip": [*CIFAR, "--backbone", "lite2", "--flip"],
    "cifar_lite0+lite2": [*CIFAR, "--backbone", "lite0+lite2"],
    "cifar_lite0+lite2_flip": [*CIFAR, "--backbone", "lite0+lite2", "--flip"],
    "bottleneck_refit": ["{cifar}", "--max-per-class", "100", "--strategy", "bottleneck", "--refit"],
    # every block at 160 px: the best accuracy per minute measured here (224 px: ~3x slower per epoch)
    "finetune": ["{cifar}", "--max-per-class", "100", "--strategy", "finetune", "--input-size", "160",
                 "--finetune-epochs", "8"],
    "finetune_top2": ["{cifar}", "--max-per-class", "100", "--strategy", "finetune", "--unfreeze", "2"],
    "frozen": ["{cifar}", "--max-per-class", "100", "--strategy", "frozen", "--epochs", "3"],
    "scratch": ["{cifar}", "--max-per-class", "100", "--strategy", "scratch"],
    "auto_flowers": [str(FLOWERS), "--strategy", "auto", "--time-budget", "300"],
}


def run_case(name: str, cifar: Path, work: Path) -> dict:
    out = work / "runs" / name
    argv = [a.format(cifar=cifar) for a in CASES[name]]
    cache = work / "cache-strategies"
    shutil.rmtree(cache / "features", ignore_errors=True)  # every case extracts its features (exports stay)
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "KERAS_TRANSFER_CACHE": str(cache)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "keras_transfer.cli", "train", *argv, "--out", str(out), "-q",
                           "--json"], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        return {"case": name, "error": done.stderr.strip().splitlines()[-1:], "wall_s": seconds}
    metrics = json.loads(done.stdout)["metrics"]
    return {"case": name, "run": str(out), "wall_s": seconds, "accuracy": metrics["accuracy"],
            "kappa": metrics["cohen_kappa"], "log_loss": metrics["log_loss"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.strategies", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="bottleneck,finetune,auto_flowers", help=f"comma list of {list(CASES)}")
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "keras-transfer-bench")
    args = parser.parse_args(argv)
    cifar = cifar_root(args.work)
    rows = [run_case(name, cifar, args.work) for name in args.only.split(",")]
    print(f"{'case':<14}{'wall s':>8}{'accuracy':>10}{'kappa':>8}{'log loss':>10}")
    for row in rows:
        if "error" in row:
            print(f"{row['case']:<14}{row['wall_s']:>8.1f}  error: {row['error']}")
        else:
            print(f"{row['case']:<14}{row['wall_s']:>8.1f}{row['accuracy']:>10.3f}{row['kappa']:>8.3f}{row['log_loss']:>10.3f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "strategies.json").write_text(json.dumps(rows, indent=2))
    print(f"wrote {RESULTS / 'strategies.json'}; compare: keras-transfer compare {' '.join(r.get('run', '') for r in rows)}")


if __name__ == "__main__":
    main()
