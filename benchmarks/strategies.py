"""Strategy benchmark: ``python -m benchmarks.strategies [--only cifar,flowers5,...]``.

Each case is a fresh ``keras-transfer train`` process timed end to end with a cold feature
cache; its backbones' engines are compiled first by an untimed run on 3 images per class (as
after a backbone's first run on the machine). The accuracy bars of the
accuracy issue, default flags: CIFAR-10 with 100 training images per class evaluated on 100
test images per class of the dataset's own test split; flowers5 (its held-out val split cut
by the loader); hymenoptera (its val folder); and ``finetune`` on the CIFAR set. The
``cifar_*`` cases measure what each choice of the default (stages, the mirror view, backbones)
pays on CIFAR; the older cases (``bottleneck``, ``frozen``, ``scratch``, ``auto_flowers``)
compare strategies. Every row says which held-out images its accuracy is from. Prints the
CPU and a table and writes JSON to benchmarks/results/strategies.json.
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

from benchmarks.data import REPO, cifar_root, cpu

RESULTS = Path(__file__).resolve().parent / "results"
FLOWERS = REPO.parent / "shared" / "datasets" / "flowers5"
HYMENOPTERA = REPO.parent / "shared" / "datasets" / "hymenoptera_data"
CIFAR = ["{cifar}", "--max-per-class", "100"]
CASES = {
    "cifar": CIFAR,
    "flowers5": [str(FLOWERS)],
    "hymenoptera": [str(HYMENOPTERA)],
    "flowers5_flip": [str(FLOWERS), "--flip"],
    # every block at 160 px: the best accuracy per minute measured here (224 px: ~3x slower per epoch)
    "finetune": [*CIFAR, "--strategy", "finetune", "--input-size", "160", "--finetune-epochs", "8"],
    "finetune_20": [*CIFAR, "--strategy", "finetune", "--input-size", "160", "--finetune-epochs", "20"],  # ~10 min
    "cifar_1stage": [*CIFAR, "--stages", "1"],
    "cifar_4stages": [*CIFAR, "--stages", "4"],
    "cifar_flip": [*CIFAR, "--flip"],
    "cifar_lite2": [*CIFAR, "--backbone", "lite2"],
    "cifar_lite2_flip": [*CIFAR, "--backbone", "lite2", "--flip"],
    "cifar_lite0+lite2": [*CIFAR, "--backbone", "lite0+lite2"],
    "cifar_lite0+lite2_flip": [*CIFAR, "--backbone", "lite0+lite2", "--flip"],
    "bottleneck_refit": [*CIFAR, "--strategy", "bottleneck", "--solver", "keras", "--refit"],
    "finetune_top2": [*CIFAR, "--strategy", "finetune", "--unfreeze", "2"],
    "frozen": [*CIFAR, "--strategy", "frozen", "--epochs", "3"],
    "scratch": [*CIFAR, "--strategy", "scratch"],
    "auto_flowers": [str(FLOWERS), "--strategy", "auto", "--time-budget", "300"],
}
GOALS = {"cifar": (0.785, 60), "flowers5": (0.80, None), "hymenoptera": (0.95, None), "finetune": (0.84, 600)}


def run_case(name: str, cifar: Path, work: Path) -> dict:
    out = work / "runs" / name
    argv = [a.format(cifar=cifar) for a in CASES[name]]
    cache = work / "cache-strategies"
    shutil.rmtree(cache / "features", ignore_errors=True)  # every case extracts its features (exports stay)
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "KERAS_TRANSFER_CACHE": str(cache)}
    if name != "finetune" and "auto" not in name:  # compile the case's engines first: the timed run starts warm
        warm = [str(HYMENOPTERA), *[a for a in argv[1:] if a not in ("--max-per-class", "100")], "--max-per-class",
                "3", "--no-baseline", "--out", str(work / "runs" / "warm-up"), "-q"]
        subprocess.run([sys.executable, "-m", "keras_transfer.cli", "train", *warm], env=env, capture_output=True)
        shutil.rmtree(cache / "features", ignore_errors=True)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "keras_transfer.cli", "train", *argv, "--out", str(out), "-q",
                           "--json"], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        return {"case": name, "error": done.stderr.strip().splitlines()[-1:], "wall_s": seconds}
    metrics = json.loads(done.stdout)["metrics"]
    return {"case": name, "run": str(out), "wall_s": seconds, "accuracy": metrics["accuracy"],
            "kappa": metrics["cohen_kappa"], "log_loss": metrics["log_loss"],
            "held_out": f"{metrics['evaluated_on']} split, {metrics['n']} images"}


def goal(row: dict) -> str:
    """The accuracy issue's bar for the case and whether the row meets it ('' for other cases)."""
    if row["case"] not in GOALS or "accuracy" not in row:
        return ""
    accuracy, seconds = GOALS[row["case"]]
    met = row["accuracy"] >= accuracy and (seconds is None or row["wall_s"] <= seconds)
    return f">= {accuracy:.1%}" + (f" in <= {seconds} s" if seconds else "") + (": met" if met else ": NOT met")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.strategies", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="cifar,flowers5,hymenoptera,finetune", help=f"comma list of {list(CASES)}")
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "keras-transfer-bench")
    args = parser.parse_args(argv)
    print(f"CPU: {cpu()}")
    cifar = cifar_root(args.work)
    rows = []
    for name in args.only.split(","):
        rows.append(run_case(name, cifar, args.work))
        rows[-1]["goal"] = goal(rows[-1])
        print(json.dumps(rows[-1]), flush=True)
    print(f"{'case':<24}{'wall s':>8}{'accuracy':>10}{'kappa':>8}{'log loss':>10}  held-out images; goal")
    for row in rows:
        if "error" in row:
            print(f"{row['case']:<24}{row['wall_s']:>8.1f}  error: {row['error']}")
        else:
            print(f"{row['case']:<24}{row['wall_s']:>8.1f}{row['accuracy']:>10.3f}{row['kappa']:>8.3f}"
                  f"{row['log_loss']:>10.3f}  {row['held_out']}; {row['goal']}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "strategies.json").write_text(json.dumps({"cpu": cpu(), "rows": rows}, indent=2))
    print(f"wrote {RESULTS / 'strategies.json'}; compare: keras-transfer compare {' '.join(r.get('run', '') for r in rows)}")


if __name__ == "__main__":
    main()
