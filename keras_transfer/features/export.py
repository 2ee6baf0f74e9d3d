"""Exporting the frozen Keras extractor once to an optimised ONNX file, cached per identity.

Keras on the torch backend exports NHWC models with a transpose around every convolution, an
unfused BatchNorm and explicit pads: run as is, half the time goes into those transposes. So
the raw export is rewritten once by ONNX Runtime's basic graph optimiser (transpose
cancellation, constant folding, standard ONNX ops only) and that clean file is what every
runtime loads; OpenVINO then fuses BatchNorm, pads and ReLU6 into the convolutions.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from pathlib import Path

import numpy as np

from keras_transfer.base import log
from keras_transfer.features.keys import identity_hash
from keras_transfer.base.paths import atomic_file, cache_dir

# Bump when the export recipe changes, so stale exported files are never reused.
EXPORT_VERSION = 2


def _keras_to_onnx(extractor, tmp: str) -> None:
    from keras_transfer.features.extractor import resolve

    extractor = resolve(extractor)
    writer = next((layer.write_features_onnx for layer in getattr(extractor, "layers", ())
                   if hasattr(layer, "write_features_onnx")), None)
    if writer is not None:  # a backbone that is an ONNX graph already (onnx:): written, not traced
        writer(tmp)
        return
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), log.silenced():
        warnings.simplefilter("ignore")
        extractor.predict_on_batch(np.zeros((1, *extractor.input_shape[1:]), np.float32))  # export needs a call
        extractor.export(tmp, format="onnx", verbose=False)


def _optimise_onnx(source: Path, tmp: str) -> None:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = tmp
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])


def _cached(identity: dict) -> Path:
    """Where the exported file of ``identity`` is cached."""
    name = re.sub(r"[^\w.+-]", "_", str(identity.get("backbone", "model")))  # onnx:enc -> onnx_enc
    stem = f"{name}-{identity_hash({**identity, 'export': EXPORT_VERSION})}"
    return cache_dir("onnx") / f"{stem}.onnx"


def discard_if_damaged(identity: dict) -> bool:
    """Deletes the cached file of ``identity`` if it does not parse (truncated, zeroed, foreign);
    whether it did. Called only after a runtime failed to load it: parsing needs ``onnx``,
    whose import (~1.3 s) the predict path must not pay."""
    path = _cached(identity)
    if not path.exists() or _readable(path):
        return False
    log.warn(f"the cached ONNX file {path} is damaged; exporting it again")
    path.unlink(missing_ok=True)
    return True


def _readable(path: Path) -> bool:
    """Whether an ONNX file parses (a truncated, zeroed or foreign file does not)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # protobuf's DecodeError and friends
        return False
    return len(model.graph.node) > 0 and len(model.graph.output) > 0


def export_onnx(extractor, identity: dict) -> Path:
    """The optimised ONNX file of ``extractor`` (exported once per identity, then cached).

    Args:
        extractor: Keras model, (B, S, S, 3) pixels in [0, 255] -> (B, D) features (or a
            ``Deferred`` one: built only when the file is not cached yet).
        identity: Everything that defines the extractor's function (backbone, weights, size, ...).

    Returns:
        Path of ``<cache>/onnx/<backbone>-<hash>.onnx``.
    """
    path = _cached(identity)
    if path.exists():
        return path
    folder, stem = path.parent, path.stem
    log.info(f"exporting {identity.get('backbone')} to ONNX (once; cached in {folder})")
    raw = atomic_file(folder / f"{stem}.raw.onnx", lambda tmp: _keras_to_onnx(extractor, tmp))
    try:
        return atomic_file(path, lambda tmp: _optimise_onnx(raw, tmp))
    finally:
        raw.unlink(missing_ok=True)
