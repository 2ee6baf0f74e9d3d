"""The solved linear head as plain NumPy: what a Keras-free process predicts with.

It lives below the strategies (which fit it) so that inference never imports training code.
``head.npz`` holds plain arrays (kernel, bias), read with ``allow_pickle=False``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_transfer.base.paths import atomic_savez


def softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits - logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -60, 60)))


@dataclass(frozen=True)
class LinearHead:
    """``softmax(x @ kernel + bias)`` on raw (unstandardised) features (D,) -> C classes; for several
    labels per image (``activation="sigmoid"``) one sigmoid per label, a label present when its
    probability reaches its ``thresholds`` entry."""

    kernel: np.ndarray  # (D, C) float32
    bias: np.ndarray  # (C,) float32
    activation: str = "softmax"  # or "sigmoid"
    thresholds: np.ndarray | None = None  # (C,) sigmoid heads only

    @property
    def multi_label(self) -> bool:
        return self.activation == "sigmoid"

    def predict(self, features: np.ndarray) -> np.ndarray:
        logits = np.asarray(features, np.float32) @ self.kernel + self.bias
        return sigmoid(logits) if self.multi_label else softmax(logits)

    def save(self, path: Path) -> None:
        extra = {"activation": np.array(self.activation)}
        if self.thresholds is not None:
            extra["thresholds"] = np.asarray(self.thresholds, np.float32)
        atomic_savez(path, kernel=self.kernel, bias=self.bias, **extra)

    @classmethod
    def load(cls, path: Path) -> LinearHead:
        with np.load(path, allow_pickle=False) as saved:
            activation = str(saved["activation"]) if "activation" in saved.files else "softmax"
            if activation not in ("softmax", "sigmoid"):
                raise ValueError(f"unknown activation {activation!r}")
            thresholds = saved["thresholds"] if "thresholds" in saved.files else None
            return cls(saved["kernel"], saved["bias"], activation, thresholds)
