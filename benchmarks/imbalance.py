"""Imbalanced classes: ``python -m benchmarks.imbalance [--keep 0.05] [--small rose]``.

flowers5 with one class cut to ``--keep`` of its photos (a seeded random choice; links, nothing
copied) is trained twice by ``keras-transfer train`` processes on the same features: with the
default (the solved head balances the classes when the largest is over 3x the smallest) and
with ``--class-weight none``. Both are evaluated on the same held-out val split (20%, cut
stratified by the loader, so the small class keeps its share there too). Prints the CPU, the
small class's recall, macro-F1, balanced accuracy and accuracy; writes
benchmarks/results/imbalance.json. Goal: small-class recall with weighting at least 2x without,
macro-F1 not lower.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.data import REPO, cpu, linked_dataset

RESULTS = Path(__file__).resolve().parent / "results"
FLOWERS = REPO.parent / "shared" / "datasets" / "flowers5"


def dataset(work: Path, small: str, keep: float) -> Path:
    folder = work / f"flowers5-{small}-{keep:g}"
    shutil.rmtree(folder, ignore_errors=True)
    files = []
    for name in sorted(p.name for p in FLOWERS.iterdir() if p.is_dir()):
        photos = sorted((FLOWERS / name).glob("*.jpg"))
        if name == small:
            photos = sorted(random.Random(0).sample(photos, max(2, round(keep * len(photos)))))
        files += photos
    return linked_dataset(files, folder)


def train(data: Path, out: Path, cache: Path, extra: list[str]) -> dict:
    done = subprocess.run([sys.executable, "-m", "keras_transfer.cli", "train", str(data), "--out", str(out), "-q",
                           "--json", "--no-baseline", *extra], env={**os.environ, "KERAS_TRANSFER_CACHE": str(cache)},
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout)["metrics"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.imbalance", description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "keras-transfer-bench")
    parser.add_argument("--small", default="rose", help="the class cut down")
    parser.add_argument("--keep", type=float, default=0.05, help="share of its photos kept")
    args = parser.parse_args(argv)
    print(f"CPU: {cpu()}")
    data = dataset(args.work, args.small, args.keep)
    rows = []
    for case, extra in (("default (balanced when > 3x)", []), ("--class-weight none", ["--class-weight", "none"])):
        m = train(data, args.work / "runs" / f"imbalance-{len(rows)}", args.work / "cache-imbalance", extra)
        small = m["per_class"][args.small]
        rows.append({"case": case, "small_recall": small["recall"], "small_support": small["support"],
                     "f1_macro": m["f1_macro"], "balanced_accuracy": m["balanced_accuracy"], "accuracy": m["accuracy"],
                     "imbalance": m["imbalance"], "weighting": m["selection"].get("class_weight"),
                     "held_out": f"{m['evaluated_on']}, {m['n']}"})
    print(f"{'case':<32}{'small recall':>13}{'macro-F1':>10}{'bal. acc':>10}{'accuracy':>10}  held-out (small class)")
    for r in rows:
        print(f"{r['case']:<32}{r['small_recall']:>13.3f}{r['f1_macro']:>10.4f}{r['balanced_accuracy']:>10.4f}"
              f"{r['accuracy']:>10.4f}  {r['held_out']} ({r['small_support']} {args.small})")
    weighted, plain = rows
    ratio = weighted["small_recall"] / plain["small_recall"] if plain["small_recall"] else float("inf")
    met = ratio >= 2 and weighted["f1_macro"] >= plain["f1_macro"]
    print(f"small-class recall {ratio:.2f}x with weighting; macro-F1 {weighted['f1_macro'] - plain['f1_macro']:+.4f}: "
          f"goal (>= 2x, macro-F1 not lower) {'met' if met else 'NOT met'}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "imbalance.json").write_text(json.dumps({"cpu": cpu(), "small": args.small, "keep": args.keep,
                                                        "rows": rows, "recall_ratio": ratio, "met": met}, indent=2))


if __name__ == "__main__":
    main()
