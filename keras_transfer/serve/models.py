"""What the server runs: a trained run's compiled classifier, and uploaded bytes decoded for it.

A default run (frozen backbone, solved head) is served through its ``Predictor``: the feature
engine's compiled runtime, the NumPy head and the unknown-image scorer. A run whose head or
backbone Keras trained is exported once to ONNX (``export_run``: Keras at start-up only) and
served by ONNX Runtime. Either way no Keras runs on the request path.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from keras_transfer.data.images import read_image, resize
from keras_transfer.evaluation.calibration import apply_temperature
from keras_transfer.run import Run


class BadUpload(ValueError):
    """An uploaded file that cannot be classified; ``status`` is the HTTP code to answer."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


def decode(data: bytes, size: int, resize_mode: str, max_pixels: int) -> np.ndarray:
    """Uploaded bytes -> uint8 (size, size, 3), refusing empty, non-image and oversized files.

    The pixel count is read from the header before anything is decoded, so a decompression
    bomb costs nothing.
    """
    if not data:
        raise BadUpload("the file is empty")
    try:
        with Image.open(io.BytesIO(data)) as image:  # the header only
            width, height = image.size
        if width * height > max_pixels:
            raise BadUpload(f"the image is {width} x {height} pixels, more than the limit of {max_pixels:,}", 413)
        pixels = read_image(io.BytesIO(data), size)  # as predict decodes files: EXIF orientation, any mode
    except BadUpload:
        raise
    except Image.DecompressionBombError as error:
        raise BadUpload(f"the image is too large to decode ({error})", 413) from error
    except Image.UnidentifiedImageError as error:
        raise BadUpload("not an image (no image format Pillow reads: JPEG, PNG, WebP, GIF, BMP, TIFF, ...)") from error
    except Exception as error:  # PIL raises many types for truncated or damaged files
        raise BadUpload(f"a damaged image ({type(error).__name__}: {error})") from error
    return resize(pixels, size, resize_mode)


@dataclass
class ServedModel:
    """One run as the server sees it. ``infer`` takes uint8 images, gives calibrated
    probabilities and unknown scores (NaN without a scorer)."""

    name: str
    run: Run
    size: int
    infer: object = field(repr=False)  # (N, S, S, 3) uint8 -> (probabilities, unknown scores)
    threshold: float | None = None

    @classmethod
    def load(cls, path: str | Path, name: str | None = None) -> ServedModel:
        from keras_transfer.inference import Predictor

        run = Run.open(path)
        name = name or run.path.resolve().name
        predictor = Predictor.open(run)
        if predictor is not None:
            runtime, temperature = predictor.source.engine.runtime, run.temperature
            unknown = predictor.unknown

            def infer(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                _, features = next(runtime.stream([(None, pixels)]))
                scores = unknown.scores(features) if unknown is not None else np.full(len(pixels), np.nan)
                return apply_temperature(predictor.head.predict(features), temperature), scores

            infer(np.zeros((1, predictor.source.size, predictor.source.size, 3), np.uint8))  # compile now
            return cls(name, run, predictor.source.size, infer, None if unknown is None else unknown.threshold)
        return cls._exported(run, name)

    @classmethod
    def _exported(cls, run: Run, name: str) -> ServedModel:
        import onnxruntime as ort

        from keras_transfer.export import export_run

        path = run.path / "export" / "model.onnx"
        if not path.is_file():
            export_run(run, "onnx", path)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        size = int(session.get_modelmeta().custom_metadata_map["input_size"])

        def infer(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return session.run(None, {"image": pixels})[0], np.full(len(pixels), np.nan)

        return cls(name, run, size, infer)

    def describe(self) -> dict:
        metrics = self.run.read("metrics.json") or {}
        return {"name": self.name, "classes": self.run.class_names, "input_size": self.size,
                "resize": self.run.config.resize, "backbone": self.run.config.backbone,
                "strategy": self.run.config.strategy, "temperature": self.run.temperature,
                "unknown_threshold": self.threshold,
                "held_out": {k: metrics.get(k) for k in ("accuracy", "cohen_kappa", "log_loss", "n", "evaluated_images")}}

    def results(self, probabilities: np.ndarray, score: float, top_k: int) -> dict:
        order = np.argsort(-probabilities)[:top_k]
        top = [{"label": self.run.class_names[i], "index": int(i), "probability": float(probabilities[i])} for i in order]
        result = {"label": top[0]["label"], "confidence": top[0]["probability"], "top_k": top}
        if self.threshold is not None:
            result.update(unknown=bool(score > self.threshold), unknown_score=float(score))
        return result
