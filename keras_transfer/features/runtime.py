"""Inference runtimes for the frozen extractor: ONNX Runtime (fast) or Keras predict (reference)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from keras_transfer import log
from keras_transfer.paths import cache_dir

RUNTIMES = ("onnx", "keras")
BatchFn = Callable[[np.ndarray], np.ndarray]


def identity_hash(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


@contextlib.contextmanager
def _stdout_silenced():
    """Sends file descriptor 1 to /dev/null: a failing torch export prints its whole graph there."""
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def export_onnx(extractor, identity: dict) -> Path:
    """Exports the Keras extractor to ONNX once per identity (cached); returns the file."""
    path = cache_dir("onnx") / f"{identity.get('backbone', 'model')}-{identity_hash(identity)}.onnx"
    if path.exists():
        return path
    log.info(f"exporting {identity.get('backbone')} to ONNX (once; cached in {path.parent})")
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _stdout_silenced():
            warnings.simplefilter("ignore")
            size = extractor.input_shape[1:]
            extractor.predict_on_batch(np.zeros((1, *size), np.float32))  # export needs one call first
            extractor.export(tmp, format="onnx", verbose=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def onnx_batch_fn(path: Path, threads: int | None = None) -> BatchFn:
    """A function running uint8 batches through the ONNX model at ``path``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda images: session.run(None, {name: images.astype(np.float32)})[0]


def make_batch_fn(extractor, identity: dict, runtime: str = "onnx") -> BatchFn:
    """The fastest available batch function; falls back to Keras predict if export fails."""
    if runtime == "onnx":
        try:
            return onnx_batch_fn(export_onnx(extractor, identity))
        except Exception as error:  # an exotic backbone may not export: stay correct, just slower
            reason = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
            log.warn(f"ONNX export failed ({type(error).__name__}: {reason}); using Keras predict")
    return lambda images: np.asarray(extractor.predict_on_batch(images))
