"""The MLflow pyfunc flavour of an exported run: ``mlflow.pyfunc.load_model`` / ``mlflow models
predict`` / ``serve`` answer with the run's ONNX file alone (ONNX Runtime, Pillow, NumPy, pandas).

Standalone on purpose: ``export.tracking`` logs this file with the model (``code_paths``) and
names it as the ``loader_module``, so loading needs no keras-transfer and unpickles nothing.
Everything the preprocessing needs (classes, input size, resize mode, unknown threshold) is in
the ONNX file's metadata.

Input: file paths (a list, a Series, or a DataFrame column ``path``), or uint8 RGB images (an
(H, W, 3) array, an (N, H, W, 3) array or a list of arrays; a DataFrame column ``image`` of
nested lists). Output: a DataFrame with ``label``, ``probability``, ``unknown`` (None when the
run has no unknown threshold) and ``probabilities`` (one per class, in ``class_names`` order).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

MODEL_FILE = "model.onnx"


def _load_pyfunc(data_path: str) -> OnnxClassifier:
    """MLflow's entry point: the folder (or file) logged as ``data_path``."""
    path = Path(data_path)
    return OnnxClassifier(path / MODEL_FILE if path.is_dir() else path)


class OnnxClassifier:
    """An exported keras-transfer classifier with its preprocessing."""

    def __init__(self, path: str | Path):
        import onnxruntime

        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        self.class_names = json.loads(meta["class_names"])
        self.size, self.resize = int(meta["input_size"]), meta.get("resize", "stretch")
        self.threshold = float(meta["unknown_threshold"]) if meta.get("unknown_threshold") else None
        self.outputs = [o.name for o in self.session.get_outputs()]

    def predict(self, model_input, params=None):
        import pandas as pd

        images = [self._pixels(item) for item in _items(model_input)]
        if not images:
            return pd.DataFrame(columns=["label", "probability", "unknown", "probabilities"])
        values = dict(zip(self.outputs, self.session.run(None, {"image": np.stack(images)})))
        probabilities = values["probabilities"]
        scores = values.get("unknown_score")
        rows = []
        for i, p in enumerate(probabilities):
            unknown = None if scores is None or self.threshold is None else bool(scores[i] > self.threshold)
            rows.append({"label": self.class_names[int(np.argmax(p))], "probability": float(np.max(p)),
                         "unknown": unknown, "probabilities": [float(v) for v in p]})
        return pd.DataFrame(rows)

    def _pixels(self, item) -> np.ndarray:
        from PIL import Image, ImageOps

        if isinstance(item, (str, Path)):
            with Image.open(item) as image:
                image.seek(0)
                array = np.asarray(ImageOps.exif_transpose(image).convert("RGB"), dtype=np.uint8)
        else:
            array = np.asarray(item)
            if array.ndim == 2:
                array = np.repeat(array[..., None], 3, axis=-1)
            if array.ndim != 3 or array.shape[-1] not in (3, 4) or array.min(initial=0) < 0 or array.max(initial=0) > 255:
                raise ValueError(f"an image must be uint8 RGB (H, W, 3) with values 0..255, not shape {array.shape}")
            array = array[..., :3].astype(np.uint8)
        return _resize(array, self.size, self.resize)


def _items(model_input) -> list:
    """Paths or images, one per row, from what MLflow hands over (a DataFrame, a list, an array)."""
    import pandas as pd

    if isinstance(model_input, pd.DataFrame):
        column = next((c for c in ("path", "image", "images", "inputs") if c in model_input.columns),
                      model_input.columns[0])
        return list(model_input[column])
    if isinstance(model_input, pd.Series):
        return list(model_input)
    if isinstance(model_input, dict):
        return _items(next(iter(model_input.values())))
    if isinstance(model_input, np.ndarray):
        if model_input.dtype.kind in "USO":
            return [str(v) for v in model_input.ravel()]
        return [model_input] if model_input.ndim in (2, 3) and model_input.shape[-1] in (3, 4) else list(model_input)
    if isinstance(model_input, (str, Path)):
        return [model_input]
    return list(model_input)


def _resize(image: np.ndarray, size: int, mode: str) -> np.ndarray:
    """keras-transfer's resize (``data.images.resize``): stretch, or centre crop / zero pad to a square first."""
    from PIL import Image

    height, width = image.shape[:2]
    if mode == "crop":
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        image = image[top:top + side, left:left + side]
    elif mode == "pad":
        top, left = (max(height, width) - height) // 2, (max(height, width) - width) // 2
        image = np.pad(image, ((top, top), (left, left), (0, 0)))
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR, reducing_gap=None))
