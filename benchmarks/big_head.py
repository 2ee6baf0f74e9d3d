"""The solved head on a million images' features: ``python -m benchmarks.big_head [--rows 1000000]``.

The matrix is synthetic but built from real features: flowers5's images through the default
backbone (lite0 + lite2, 3,864 values; extracted once by the library's own feature path, then
read from the shared cache), split as a default run splits it (3,453 train / 864 val images).
Each of ``--rows`` training rows is a random train image's features plus Gaussian noise of
``--noise`` times each feature's standard deviation, with that image's label, stored float16 on
disk (``FeatureMatrix``, ~7.7 GB for a million rows, under ``--work``, deleted afterwards unless
``--keep``). Held out: ``--held-out`` rows made the same way from the 864 val images, which no
training row comes from, and the 864 clean val features themselves.

Cases, each in its own process (so its peak RSS is its own), side by side:
- ``memory``: the in-memory solver (``fit_linear_head``, default budget) on the first
  ``--compare`` rows loaded as float32;
- ``stream-compare``: the streamed solver (forced by a 1-byte budget) on the same rows;
- ``sgd``: scikit-learn's ``SGDClassifier.partial_fit`` (log loss, same standardisation, alpha
  = 1 / (C N) with the C the solver chose) over the same rows, ``--sgd-epochs`` passes;
- ``stream``: ``fit_linear_head`` on the whole matrix with the default budget (half the available
  memory): it chooses the streamed solver by itself when the float32 copies would not fit.
Printed: wall seconds, peak RSS, passes, held-out accuracies, the load average; JSON to
``benchmarks/results/big_head.json``.
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
FLOWERS = REPO.parent / "shared" / "datasets" / "flowers5"
BLOCK = 16384


def real_features() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """flowers5's default features (train, train labels, val, val labels), split as a default run."""
    import keras_transfer  # noqa: F401
    from keras_transfer.base.paths import cache_dir
    from keras_transfer.config import TrainConfig
    from keras_transfer.config.sources import dataset_of, feature_source

    config = TrainConfig(data=str(FLOWERS))
    dataset = dataset_of(config)
    source = feature_source(config, cache_dir("big-head") / "flowers5")
    (x, i), (v, j) = source(dataset.train), source(dataset.val)
    return x, dataset.train.labels[i], v, dataset.val.labels[j]


def _noisy(base: np.ndarray, labels: np.ndarray, count: int, noise: float, seed) -> tuple[np.ndarray, np.ndarray]:
    """``count`` rows: random ``base`` rows plus noise; the rows picked depend on ``seed`` only (see ``_picks``)."""
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(base), count)
    scale = (noise * base.std(axis=0)).astype(np.float32)
    return base[pick] + rng.standard_normal((count, base.shape[1]), np.float32) * scale, labels[pick]


def build(work: Path, rows: int, noise: float, held_out: int) -> dict:
    """Writes the training matrix (block by block: row block b is seeded by b) and the held-out rows."""
    from keras_transfer.base import log
    from keras_transfer.features.matrix import FeatureMatrix

    x, y, v, w = real_features()
    stamp = {"rows": rows, "noise": noise, "held_out": held_out, "dim": x.shape[1], "format": 1}
    if (work / "stamp.json").is_file() and json.loads((work / "stamp.json").read_text()) == stamp:
        return {"seconds": 0.0, "reused": True, **stamp}
    shutil.rmtree(work, ignore_errors=True)
    start = time.perf_counter()
    labels = np.concatenate([y[np.random.default_rng([1, b]).integers(0, len(x), min(BLOCK, rows - b))]
                             for b in range(0, rows, BLOCK)])  # the rows _noisy picks, block by block
    with FeatureMatrix.create(work / "train", labels, x.shape[1]) as writer:
        for b in log.progress(range(0, rows, BLOCK), total=-(-rows // BLOCK), desc="writing rows", unit="block"):
            block, block_labels = _noisy(x, y, min(BLOCK, rows - b), noise, [1, b])
            assert np.array_equal(block_labels, labels[b:b + len(block)])
            writer.write(b, block)
    hx, hy = _noisy(v, w, held_out, noise, 2)
    np.savez(work / "held_out.npz", x=hx.astype(np.float16), y=hy, clean_x=v, clean_y=w)
    (work / "stamp.json").write_text(json.dumps(stamp))
    return {"seconds": time.perf_counter() - start, "reused": False, "gb_on_disk": rows * x.shape[1] * 2 / 1e9, **stamp}


def _accuracies(head, work: Path) -> dict:
    """Accuracy and log loss on the noisy held-out rows and on the clean val features."""
    out = {}
    with np.load(work / "held_out.npz", allow_pickle=False) as saved:
        for name, x, y in (("held_out_noisy", saved["x"], saved["y"]), ("held_out_clean_val", saved["clean_x"],
                                                                          saved["clean_y"])):
            p = head.predict(x.astype(np.float32))
            out[name] = float(np.mean(p.argmax(1) == y))
            out[f"{name}_log_loss"] = float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-7, 1)).mean())
    return out


def case(name: str, work: Path, compare: int, sgd_epochs: int, C: float | None, budget: int | None) -> dict:
    """One case in this process: its result row (see the module doc)."""
    import keras_transfer  # noqa: F401
    from keras_transfer.features.matrix import FeatureMatrix
    from keras_transfer.strategies.solver import fit_linear_head
    from keras_transfer.strategies.streaming import memory_budget, peak_rss_mb

    matrix = FeatureMatrix(work / "train")
    rows = matrix.rows if name == "stream" else min(compare, matrix.rows)
    y = matrix.labels[:rows]
    start = time.perf_counter()
    if name == "memory":
        fit = fit_linear_head(matrix.chunk(0, rows)[None], y, 5)
    elif name == "stream-compare":
        fit = fit_linear_head(matrix.chunk(0, rows)[None].astype(np.float16), y, 5, budget=1)
    elif name == "stream":
        fit = fit_linear_head(matrix, y, 5, budget=budget)
    else:
        return _sgd(matrix, rows, sgd_epochs, C, work)
    seconds = time.perf_counter() - start
    return {"case": name, "rows": rows, "seconds": seconds, "peak_rss_mb": peak_rss_mb(), "C": fit.C,
            "streamed": bool(fit.streaming), "passes": fit.streaming.get("passes"),
            "cpu_seconds": fit.streaming.get("cpu_seconds"),
            "budget_gb": ((budget if name == "stream" else None) or memory_budget()) / 1e9,
            **_accuracies(fit.head, work)}


def _sgd(matrix, rows: int, epochs: int, C: float, work: Path) -> dict:
    """SGDClassifier.partial_fit over chunks: the out-of-core alternative to the chunked L-BFGS."""
    from sklearn.linear_model import SGDClassifier

    from keras_transfer.inference.head import LinearHead
    from keras_transfer.strategies.streaming import CHUNK_ROWS, moments, peak_rss_mb
    from keras_transfer.features.matrix import ArrayRows

    start = time.perf_counter()
    source = ArrayRows(matrix.array[:rows])
    mean, std = moments(source)
    model = SGDClassifier(loss="log_loss", alpha=1.0 / (C * rows), random_state=0)
    classes = np.arange(5)
    for _ in range(epochs):
        for begin, block in source.chunks(CHUNK_ROWS):
            model.partial_fit((block - mean) / std, matrix.labels[begin:begin + len(block)], classes)
    head = LinearHead((model.coef_.T / std[:, None]).astype(np.float32),
                      (model.intercept_ - (mean / std) @ model.coef_.T).astype(np.float32))
    return {"case": "sgd", "rows": rows, "seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb(),
            "C": C, "passes": epochs + 1, **_accuracies(head, work)}


def _run_case(name: str, args) -> dict:
    argv = [sys.executable, "-m", "benchmarks.big_head", "--case", name, "--work", str(args.work),
            "--compare", str(args.compare), "--sgd-epochs", str(args.sgd_epochs), "--C", str(args.C or 0),
            *(["--budget-gb", str(args.budget_gb)] if args.budget_gb else [])]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO)
    if done.returncode:
        raise SystemExit(f"case {name} failed:\n{done.stderr[-3000:]}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  {name}: {row['seconds']:.1f} s, peak RSS {row['peak_rss_mb']:.0f} MB", flush=True)
    return {**row, "load_after": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.big_head", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="training rows (default 1,000,000)")
    parser.add_argument("--compare", type=int, default=50_000, help="rows both solvers fit (default 50,000)")
    parser.add_argument("--held-out", type=int, default=20_000, help="noisy held-out rows (default 20,000)")
    parser.add_argument("--noise", type=float, default=0.5, help="noise / feature std (default 0.5)")
    parser.add_argument("--sgd-epochs", type=int, default=5, help="SGDClassifier passes (default 5)")
    parser.add_argument("--only", default="memory,stream-compare,sgd,stream", help="comma list of cases")
    parser.add_argument("--work", type=Path, default=Path("/tmp/keras-transfer-big-head"))
    parser.add_argument("--budget-gb", type=float, help="memory budget of the stream case (default: half the "
                        "available memory, as a run); e.g. 1 to stream a matrix that would fit")
    parser.add_argument("--keep", action="store_true", help="keep (and reuse) the matrix")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--C", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        budget = int(args.budget_gb * 1e9) if args.budget_gb else None
        print(json.dumps(case(args.case, args.work, args.compare, args.sgd_epochs, args.C, budget)))
        return
    print(f"CPU: {cpu()}; load average {os.getloadavg()[0]:.1f}", flush=True)
    made = build(args.work, args.rows, args.noise, args.held_out)
    print(f"matrix: {args.rows:,} x {made['dim']} float16 ({args.rows * made['dim'] * 2 / 1e9:.1f} GB) "
          f"{'reused' if made['reused'] else 'written in %.0f s' % made['seconds']}", flush=True)
    rows = []
    try:
        for name in args.only.split(","):
            rows.append(_run_case(name, args))
            args.C = args.C or rows[-1].get("C")
    finally:
        if not args.keep:
            shutil.rmtree(args.work, ignore_errors=True)
    print(f"\n{'case':<16}{'rows':>10}{'seconds':>9}{'peak RSS MB':>13}{'passes':>8}{'C':>7}"
          f"{'held-out acc / loss':>21}{'clean val acc / loss':>22}{'load':>6}")
    for row in rows:
        print(f"{row['case']:<16}{row['rows']:>10,}{row['seconds']:>9.1f}{row['peak_rss_mb']:>13.0f}"
              f"{row.get('passes') or '':>8}{row['C']:>7g}"
              f"{row['held_out_noisy']:>13.4f} / {row['held_out_noisy_log_loss']:.3f}"
              f"{row['held_out_clean_val']:>14.4f} / {row['held_out_clean_val_log_loss']:.3f}{row['load_after']:>6.1f}")
    RESULTS.mkdir(exist_ok=True)
    result = {"cpu": cpu(), "matrix": made, "rows": rows,
              "goals": {"peak_rss_mb": 6000, "seconds": 900, "accuracy": "stream == memory on held-out"}}
    (RESULTS / "big_head.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {RESULTS / 'big_head.json'}")


if __name__ == "__main__":
    main()
