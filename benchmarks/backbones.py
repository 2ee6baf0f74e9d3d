"""Backbone zoo benchmark: ONNX export, ONNX-vs-Keras agreement and feature throughput per backbone.

One command, prints a table, writes JSON:

    python -m benchmarks.backbones [--names resnet50 vgg16] [--size 224] [--batch 16] [--out FILE]
    python -m benchmarks.backbones --stronger [--seconds 5]   # what ViT-S/14 and ConvNeXt-T cost here

``--stronger``: img/s of the feature engine (OpenVINO, fp32 and bf16 where the CPU has it) for
Lite0 and Lite2 (built-in) beside a ViT-S/14 (DINOv2-small's shape) and a ConvNeXt-T read
through ``onnx:`` (``benchmarks/stronger_backbones.py``), measured side by side in one run.

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


def _cpu() -> dict:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return {"cpu": model or platform.processor(), "cores": os.cpu_count(), "load": os.getloadavg(),
            "flags": [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]}


def engine_speed(spec, size: int, precision: str, seconds: float, batch: int = 16) -> float | str:
    """Images/s of the compiled feature engine (OpenVINO) for ``spec`` with random weights."""
    from keras_transfer.base.errors import KerasTransferError
    from keras_transfer.features.runtime import make_runtime

    extractor = build_extractor(spec, size, None)
    try:
        runtime = make_runtime(extractor, {"backbone": spec.name, "weights": "random", "size": size, "bench": 2},
                               RuntimeOptions("openvino", precision), size)
    except KerasTransferError as error:
        return f"n/a: {error.what}"
    images = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), np.uint8)
    list(runtime.stream([(None, images)]))
    count, start = 0, time.perf_counter()
    while count < 2 * batch or time.perf_counter() - start < seconds:
        list(runtime.stream([(None, images)]))
        count += batch
    return count / (time.perf_counter() - start)


def stronger(seconds: float) -> list[dict]:
    """Lite0, Lite2, ViT-S/14 and ConvNeXt-T through the same engine, fp32 and bf16."""
    from benchmarks.stronger_backbones import ConvNeXt, VisionTransformer
    from keras_transfer.backbones.onnx_encoder import save_torch_encoder

    folder = Path(tempfile.mkdtemp(prefix="kt-stronger-"))
    torch.manual_seed(0)
    imagenet = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    params = {}
    for module, file, extra in ((VisionTransformer(), "vit_s14.onnx", {"token_pooling": "cls"}),
                                (ConvNeXt(), "convnext_t.onnx", {})):
        save_torch_encoder(module, 224, folder / file, {**imagenet, **extra})
        params[file] = sum(p.numel() for p in module.parameters()) / 1e6
    rows = []
    for name, label in (("efficientnet_lite0", "Lite0"), ("efficientnet_lite2", "Lite2"),
                        (f"onnx:{folder / 'vit_s14.onnx'}", "ViT-S/14 (DINOv2-small shape)"),
                        (f"onnx:{folder / 'convnext_t.onnx'}", "ConvNeXt-T")):
        spec = get_backbone(name)
        count = params.get(Path(name[5:]).name) or spec.build(spec.input_size, None).count_params() / 1e6
        row = {"backbone": label, "size": spec.input_size, "features": spec.feature_dim, "params_m": count}
        for precision in ("fp32", "bf16"):
            row[precision] = engine_speed(spec, spec.input_size, precision, seconds)
        rows.append(row)
        print(rows[-1], flush=True)
    return rows


def format_stronger(rows: list[dict]) -> str:
    def rate(value):
        return f"{value:.1f}" if isinstance(value, float) else "n/a"

    base = rows[0]["fp32"]
    lines = [f"{'backbone':<32} {'size':>4} {'features':>8} {'params M':>8} {'fp32 img/s':>10} {'vs Lite0':>8} "
             f"{'bf16 img/s':>10}"]
    lines += [f"{r['backbone']:<32} {r['size']:>4} {r['features']:>8} {r['params_m']:>8.1f} {rate(r['fp32']):>10} "
              f"{(r['fp32'] / base if isinstance(r['fp32'], float) and isinstance(base, float) else 0):>7.2f}x "
              f"{rate(r['bf16']):>10}" for r in rows]
    notes = {r["bf16"] for r in rows if isinstance(r["bf16"], str)}
    return "\n".join(lines + [f"bf16: {note}" for note in notes])


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
    parser.add_argument("--out", default=None, help="JSON (default: benchmarks/results/backbones[-stronger].json)")
    parser.add_argument("--stronger", action="store_true", help="ViT-S/14 and ConvNeXt-T beside Lite0/Lite2")
    parser.add_argument("--seconds", type=float, default=5.0, help="--stronger: timing per backbone and precision")
    args = parser.parse_args(argv)
    torch.set_flush_denormal(True)
    if args.stronger:
        machine = _cpu()
        rows = stronger(args.seconds)
        print(f"\n{machine['cpu']}, {machine['cores']} cores, flags {' '.join(machine['flags'])}, "
              f"load before {machine['load'][0]:.1f}, after {os.getloadavg()[0]:.1f}")
        print(format_stronger(rows))
        out = Path(args.out or "benchmarks/results/backbones-stronger.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({**machine, "load_after": os.getloadavg(), "rows": rows}, indent=2))
        print(f"\nwrote {out}")
        return
    rows = []
    for name in args.names or list_backbones():
        rows.append(measure(name, args.size, args.batch))
        print(format_rows(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(format_rows(rows))
    out = Path(args.out or "benchmarks/results/backbones.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                               "batch": args.batch, "rows": rows}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
