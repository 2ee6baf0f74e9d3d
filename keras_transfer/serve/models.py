"""What the server runs: a trained run's ``RunModel`` (the one inference rule), and uploaded bytes
decoded for it.

A default run (frozen backbone, solved head) answers through the feature engine's compiled
runtime, the NumPy head and the unknown-image scorer, without Keras; a run whose head Keras
trained runs that head in this process, on features from the same compiled engine.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from keras_transfer.data.images import read_image, resize
from keras_transfer.run.folder import Run
from keras_transfer.run.model import RunModel


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
    """One run as the server sees it: ``infer`` takes uint8 images, gives calibrated probabilities
    and unknown scores (NaN without a scorer), by the run's ``RunModel``."""

    name: str
    model: RunModel = field(repr=False)

    @classmethod
    def load(cls, path: str | Path, name: str | None = None) -> ServedModel:
        model = RunModel.open(path)
        served = cls(name or model.run.path.resolve().name, model)
        model.source.engine.warm()  # compile now, for every batch shape, not on the first requests
        served.infer(np.zeros((1, model.size, model.size, 3), np.uint8))  # and the head
        return served

    @property
    def run(self) -> Run:
        return self.model.run

    @property
    def size(self) -> int:
        return self.model.size

    def infer(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        answer = self.model.predict_pixels(pixels)
        return answer.probabilities, answer.unknown_scores

    def describe(self) -> dict:
        metrics = self.run.metrics
        return {"name": self.name, "classes": self.model.class_names, "input_size": self.size,
                "resize": self.model.resize_mode, "backbone": self.run.config.backbone,
                "strategy": self.run.config.strategy, "temperature": self.model.temperature,
                "views": len(self.model.views), "unknown_threshold": self.model.threshold,
                "held_out": {k: metrics.get(k) for k in ("accuracy", "cohen_kappa", "log_loss", "n", "evaluated_images")}}

    def results(self, probabilities: np.ndarray, score: float, top_k: int) -> dict:
        result = self.model.top_k(probabilities, score, top_k)
        top = result.pop("predictions")
        return {"label": top[0]["label"], "confidence": top[0]["probability"], "top_k": top, **result}
