"""The parity table of exported files: agreement with the Keras model, speed, size."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from keras_transfer.run import Run

MAX_IMAGES = 256  # held-out images compared (all of them up to this many)


def held_out_pixels(run: Run, size: int) -> np.ndarray:
    """The run's held-out images as the engine and the exported files see them (uint8, resized)."""
    from keras_transfer.api import _load
    from keras_transfer.data.images import resize

    split = _load(run.config).eval_split
    images = []
    for i in range(min(len(split), MAX_IMAGES)):
        try:
            images.append(resize(split.image(i, size), size, run.config.resize))
        except Exception:  # undecodable files were listed at training time; skip them here too
            continue
    return np.stack(images)


def session(path: Path):
    """``run(batch) -> probabilities`` for an exported file, with its own runtime only."""
    if path.suffix == ".onnx":
        import onnxruntime as ort

        model = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda batch: model.run(None, {"image": batch})[0]
    import openvino as ov

    # f32: on CPUs with AMX OpenVINO would otherwise run bf16 (max |dp| ~4e-2 measured)
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return lambda batch: compiled(batch)[0]


def _throughput(run, pixels: np.ndarray, batch: int) -> float:
    chunk = pixels[:batch] if len(pixels) >= batch else np.resize(pixels, (batch, *pixels.shape[1:]))
    run(chunk)  # warm-up
    repeats, start = max(1, 64 // batch), time.perf_counter()
    for _ in range(repeats):
        run(chunk)
    return repeats * batch / (time.perf_counter() - start)


def parity_table(run: Run, files: dict[str, Path]) -> list[dict]:
    """Per exported file: top-1 agreement and max |prob diff| vs ``model.keras`` on the held-out
    images, images/s at batch 1 and 32, file size."""
    size = int(run.config.size)
    pixels = held_out_pixels(run, size)
    reference = np.concatenate([np.asarray(run.model.predict_on_batch(pixels[i:i + 32]))
                                for i in range(0, len(pixels), 32)])
    rows = []
    for fmt, path in files.items():
        infer = session(path)
        ours = np.concatenate([np.asarray(infer(pixels[i:i + 32])) for i in range(0, len(pixels), 32)])
        size_bytes = path.stat().st_size + (path.with_suffix(".bin").stat().st_size if path.suffix == ".xml" else 0)
        rows.append({"format": fmt, "file": str(path), "images": len(pixels), "evaluated_on": "held-out split",
                     "top1_agreement": float(np.mean(ours.argmax(1) == reference.argmax(1))),
                     "max_abs_prob_diff": float(np.abs(ours - reference).max()),
                     "images_per_s_batch1": _throughput(infer, pixels, 1),
                     "images_per_s_batch32": _throughput(infer, pixels, 32), "megabytes": size_bytes / 1e6})
    return rows


def format_parity(rows: list[dict]) -> str:
    lines = [f"{'format':<10}{'top-1 agree':>12}{'max |dp|':>11}{'img/s b1':>10}{'img/s b32':>11}{'MB':>8}  file"]
    for r in rows:
        lines.append(f"{r['format']:<10}{r['top1_agreement']:>12.4f}{r['max_abs_prob_diff']:>11.2e}"
                     f"{r['images_per_s_batch1']:>10.1f}{r['images_per_s_batch32']:>11.1f}{r['megabytes']:>8.1f}  {r['file']}")
    return "\n".join(lines) + f"\n(on {rows[0]['images']} held-out images, vs model.keras)" if rows else ""
