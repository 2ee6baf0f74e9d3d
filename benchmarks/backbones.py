"""Backbone zoo benchmark: ONNX export, ONNX-vs-Keras agreement and feature throughput per backbone.

One command, prints a table, writes JSON:

    python -m benchmarks.backbones [--names resnet50 vgg16] [--size 224] [--batch 16] [--out FILE]

Random weights (no download needed: speed and exportability do not depend on the values),
with denormal floats flushed to zero: a randomly initialised deep net's activations shrink
into denormals, which the CPU computes several times slower (real weights do not do this).
Sizes default to each backbone's native input. Each backbone is exported once into a
temporary cache, so export times are cold.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_TRANSFER_CACHE", tempfile.mkdtemp(prefix="kt-bench-"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import keras_transfer  # noqa: E402, F401  (selects the torch backend)
from keras_transfer.backbones import get_backbone, list_backbones  # noqa: E402
from keras_transfer.features.export import export_onnx  # noqa: E402
from keras_transfer.features.runtime import RuntimeOptions, onnx_runtime  # noqa: E402
from keras_transfer.backbones.network import build_extractor  # noqa: E402


def throughput(fn, images: np.ndarray, repeats: int = 2) -> float:
    """Images per second of ``fn`` on ``images`` (best of ``repeats`` after one warm-up)."""
    fn(images)
    best = min(_timed(fn, images) for _ in range(repeats))
    return len(images) / best


def _timed(fn, images: np.ndarray) -> float:
    start = time.perf_counter()
    fn(images)
    return time.perf_counter() - start


def measure(name: str, size: int | None, batch: int) -> dict:
    """One row: build, export and throughput figures of one backbone."""
    spec = get_backbone(name)
    size = size or spec.input_size
    start = time.perf_counter()
    extractor = build_extractor(spec, size, None)
    row = {"name": name, "size": size, "build_s": time.perf_counter() - start}
    images = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3)).astype(np.uint8)
    keras_fn = lambda x: np.asarray(extractor.predict_on_batch(x))  # noqa: E731
    reference = keras_fn(images)
    row["keras_img_s"] = throughput(keras_fn, images)
    start = time.perf_counter()
    try:
        onnx_fn = onnx_runtime(export_onnx(extractor, {"backbone": name, "size": size, "bench": True}),
                               RuntimeOptions("onnx")).infer
    except Exception as error:  # report, do not stop: this is what the benchmark is for
        row.update(onnx="fails", export_s=time.perf_counter() - start,
                   onnx_error=f"{type(error).__name__}: {str(error).strip().splitlines()[0][:70]}")
        return row
    row.update(onnx="ok", export_s=time.perf_counter() - start)
    row["onnx_rel_error"] = float(np.abs(onnx_fn(images) - reference).max() / (np.abs(reference).max() + 1e-30))
    row["onnx_img_s"] = throughput(onnx_fn, images)
    return row


def format_rows(rows: list[dict]) -> str:
    lines = [f"{'backbone':<20} {'size':>4} {'build s':>7} {'keras img/s':>11} {'onnx':>5} {'export s':>8} "
             f"{'onnx img/s':>10} {'rel error':>9}"]
    for r in rows:
        onnx = (f"{r['onnx_img_s']:>10.1f} {r['onnx_rel_error']:>9.1e}" if r["onnx"] == "ok"
                else f"{'-':>10} {'-':>9}  {r['onnx_error']}")
        lines.append(f"{r['name']:<20} {r['size']:>4} {r['build_s']:>7.1f} {r['keras_img_s']:>11.1f} "
                     f"{r['onnx']:>5} {r['export_s']:>8.1f} {onnx}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", nargs="*", default=None, help="backbones (default: all registered)")
    parser.add_argument("--size", type=int, default=None, help="input size (default: each native size)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--out", default="benchmarks/results/backbones.json")
    args = parser.parse_args(argv)
    torch.set_flush_denormal(True)
    rows = []
    for name in args.names or list_backbones():
        rows.append(measure(name, args.size, args.batch))
        print(format_rows(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(format_rows(rows))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                               "batch": args.batch, "rows": rows}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
