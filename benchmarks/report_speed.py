"""How long `keras-transfer report` takes on a hymenoptera run (the bar: under 30 s).

    python -m benchmarks.report_speed [--run RUN_FOLDER] [--repeats 3]

Without --run it first trains a default bottleneck run on ../shared/datasets/hymenoptera_data
(not timed). Times the in-process ``write_report`` (with and without PDF) and the whole CLI
command in a fresh process (imports included). Prints a table; writes
benchmarks/results/report_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import keras_transfer  # noqa: F401  (selects the torch backend)
from keras_transfer import TrainConfig, train
from keras_transfer.report import write_report

ROOT = Path(__file__).resolve().parents[1]
HYMENOPTERA = ROOT.parent / "shared" / "datasets" / "hymenoptera_data"


def _cli_seconds(run: Path, out: Path) -> float:
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "keras_transfer.cli", "report", str(run), "--out", str(out), "-q"],
                   check=True, env=env, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="an existing hymenoptera run folder")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.run) if args.run else train(TrainConfig(data=str(HYMENOPTERA)), Path(tmp) / "run").path
        rows = []
        for label, pdf in (("write_report (html + png)", False), ("write_report (html + png + pdf)", True)):
            times = [write_report(run, Path(tmp) / "report", pdf=pdf).seconds for _ in range(args.repeats)]
            rows.append({"what": label, "best_s": min(times), "median_s": sorted(times)[len(times) // 2]})
        times = [_cli_seconds(run, Path(tmp) / "cli") for _ in range(args.repeats)]
        rows.append({"what": "keras-transfer report (new process)", "best_s": min(times),
                     "median_s": sorted(times)[len(times) // 2]})
    print(f"{'what':<40}{'best s':>9}{'median s':>10}")
    for row in rows:
        print(f"{row['what']:<40}{row['best_s']:>9.2f}{row['median_s']:>10.2f}")
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "report_speed.json").write_text(json.dumps({"cpus": os.cpu_count(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
