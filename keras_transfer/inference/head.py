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


@dataclass(frozen=True)
class LinearHead:
    """``softmax(x @ kernel + bias)`` on raw (unstandardised) features (D,) -> C classes."""

    kernel: np.ndarray  # (D, C) float32
    bias: np.ndarray  # (C,) float32

    def predict(self, features: np.ndarray) -> np.ndarray:
        return softmax(np.asarray(features, np.float32) @ self.kernel + self.bias)

    def save(self, path: Path) -> None:
        atomic_savez(path, kernel=self.kernel, bias=self.bias)

    @classmethod
    def load(cls, path: Path) -> LinearHead:
        with np.load(path, allow_pickle=False) as saved:
            return cls(saved["kernel"], saved["bias"])
