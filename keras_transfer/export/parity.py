"""The parity table of exported files: agreement with the run's own answer (its ``RunModel``), speed, size."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from keras_transfer.base import log
from keras_transfer.base.paths import write_json
from keras_transfer.config import dataset_of
from keras_transfer.data.images import resize
from keras_transfer.run import Files, Run, RunModel

MAX_IMAGES = 256  # held-out images compared (all of them up to this many)


def split_pixels(split, size: int, resize_mode: str, limit: int = MAX_IMAGES) -> tuple[np.ndarray, np.ndarray]:
    """(pixels, labels) of up to ``limit`` images spread evenly over ``split``, as the engine and the
    exported files see them (uint8, resized); undecodable files (listed at training time) are skipped."""
    images, kept = [], []
    spread = np.unique(np.linspace(0, len(split) - 1, min(len(split), limit)).round().astype(int))
    for i in spread:  # evenly over the split: folder splits are stored class by class
        try:
            images.append(resize(split.image(i, size), size, resize_mode))
        except Exception:
            continue
        kept.append(i)
    return np.stack(images), split.labels[kept]


def held_out(run: Run, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(pixels, labels) of up to ``MAX_IMAGES`` held-out images of the run."""
    return split_pixels(dataset_of(run.config).eval_split, size, run.config.resize)


def session(path: Path, with_unknown: bool = False):
    """``run(batch) -> probabilities`` for an exported file, with its own runtime only; with
    ``with_unknown``: ``-> (probabilities, unknown scores or None)``."""
    if path.suffix == ".tflite":
        infer = _litert_session(path)
        return (lambda batch: (infer(batch), None)) if with_unknown else infer
    if path.suffix == ".onnx":
        import onnxruntime as ort

        model = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outputs = lambda batch: model.run(None, {"image": batch})  # noqa: E731
    else:
        import openvino as ov

        # f32: on CPUs with AMX OpenVINO would otherwise run bf16 (max |dp| ~4e-2 measured)
        compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        outputs = lambda batch: list(compiled(batch).values())  # noqa: E731
    if with_unknown:
        return lambda batch: (lambda out: (out[0], out[1] if len(out) > 1 else None))(outputs(batch))
    return lambda batch: outputs(batch)[0]


def _litert_session(path: Path):
    """A LiteRT interpreter (XNNPACK on the CPU) whose batch is resized to each call's."""
    from ai_edge_litert.interpreter import Interpreter

    with log.silenced((1, 2)):  # "INFO: Created TensorFlow Lite XNNPACK delegate" from native code
        interpreter = Interpreter(str(path))
    index = interpreter.get_input_details()[0]["index"]
    output = interpreter.get_output_details()[0]["index"]
    shape = [0]

    def run(batch: np.ndarray) -> np.ndarray:
        if shape[0] != len(batch):
            interpreter.resize_tensor_input(index, list(batch.shape))
            with log.silenced((1, 2)):
                interpreter.allocate_tensors()
            shape[0] = len(batch)
        interpreter.set_tensor(index, np.ascontiguousarray(batch, np.uint8))
        interpreter.invoke()
        return interpreter.get_tensor(output).copy()

    return run


def _throughput(run, pixels: np.ndarray, batch: int) -> float:
    chunk = pixels[:batch] if len(pixels) >= batch else np.resize(pixels, (batch, *pixels.shape[1:]))
    run(chunk)  # warm-up
    repeats, start = max(1, 64 // batch), time.perf_counter()
    for _ in range(repeats):
        run(chunk)
    return repeats * batch / (time.perf_counter() - start)


def parity_table(model: RunModel | Run | str | Path, files: dict[str, Path]) -> list[dict]:
    """Per exported file: top-1 agreement and max |prob diff| vs the run's own answer (``RunModel``:
    what ``predict`` and ``serve`` give) and accuracy on the held-out images, images/s at batch 1
    and 32, file size; an int8 file also its accuracy cost in points and speed-up over the fp32
    file of its format, when exported too."""
    model = RunModel.open(model)
    pixels, labels = held_out(model.run, model.size)
    reference = np.concatenate([model.predict_pixels(pixels[i:i + 32]).probabilities
                                for i in range(0, len(pixels), 32)])
    if model.multi_label:  # the label sets (accuracy: exact match), else the top class
        decide, truth = (lambda p: p >= model.head.thresholds), labels.astype(bool)
    else:
        decide, truth = (lambda p: p.argmax(1)[:, None]), labels[:, None]
    rows = {}
    for name, path in files.items():
        infer = session(path)
        ours = np.concatenate([np.asarray(infer(pixels[i:i + 32])) for i in range(0, len(pixels), 32)])
        size_bytes = path.stat().st_size + (path.with_suffix(".bin").stat().st_size if path.suffix == ".xml" else 0)
        rows[name] = {"format": name, "file": str(path), "images": len(pixels), "evaluated_on": "held-out split",
                      "top1_agreement": float(np.mean(np.all(decide(ours) == decide(reference), axis=1))),
                      "max_abs_prob_diff": float(np.abs(ours - reference).max()),
                      "accuracy": float(np.mean(np.all(decide(ours) == truth, axis=1))),
                      "images_per_s_batch1": _throughput(infer, pixels, 1),
                      "images_per_s_batch32": _throughput(infer, pixels, 32), "megabytes": size_bytes / 1e6}
    for name, row in rows.items():
        fp32 = rows.get(name.removesuffix("-int8"))
        if name.endswith("-int8") and fp32 is not None:
            row["accuracy_cost_points"] = 100 * (fp32["accuracy"] - row["accuracy"])
            row["speedup_batch32"] = row["images_per_s_batch32"] / fp32["images_per_s_batch32"]
    return list(rows.values())


def format_parity(rows: list[dict]) -> str:
    if not rows:
        return ""
    body = [[r["format"], r["top1_agreement"], f"{r['max_abs_prob_diff']:.2e}", r["accuracy"],
             f"{r['images_per_s_batch1']:.1f}", f"{r['images_per_s_batch32']:.1f}", f"{r['megabytes']:.1f}",
             f"{r['accuracy_cost_points']:+.2f} pt / {r['speedup_batch32']:.2f}x" if "accuracy_cost_points" in r else ""]
            for r in rows]
    text = log.table(["format", "top-1 agree", "max |dp|", "accuracy", "img/s b1", "img/s b32", "MB",
                      "int8 cost / speed-up"], body)
    files = "\n".join(f"  {r['format']}: {r['file']}" for r in rows)
    return f"{text}\n(on {rows[0]['images']} held-out images, vs the run's own answer: predict)\n{files}"


def write_parity(model: RunModel | Run | str | Path, files: dict[str, Path]) -> list[dict]:
    """The parity table of ``files``, merged into ``parity.json`` beside them (rows of other files kept)."""
    rows = parity_table(model, files)
    path = next(iter(files.values())).parent / Files.PARITY
    try:
        import json

        kept = [r for r in json.loads(path.read_text()) if r.get("format") not in files] if path.is_file() else []
    except (OSError, ValueError, AttributeError):
        kept = []  # a damaged table is rewritten
    write_json(path, kept + rows)
    return rows
