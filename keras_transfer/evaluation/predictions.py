"""The held-out split's predictions, saved in the run folder so reports need no model."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from keras_transfer.base.paths import atomic_savez
from keras_transfer.evaluation.calibration import apply_temperature


@dataclass(frozen=True)
class Predictions:
    """Class probabilities of the images of one split.

    Attributes:
        split: Split name (``val`` or ``test``).
        ids: Image identifiers (file paths, or ``split[i]`` for arrays), one per row.
        indices: Positions of the rows in the split (images that failed to decode are absent).
        labels: True class indices.
        probabilities: Predicted probabilities (N, C).
    """

    split: str
    ids: np.ndarray
    indices: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    def with_temperature(self, temperature: float) -> Predictions:
        """The same predictions with the head's logits divided by ``temperature`` (calibrated)."""
        return replace(self, probabilities=apply_temperature(self.probabilities, temperature))

    def save(self, path: Path) -> None:
        """Writes a plain ``.npz`` (no pickled objects) atomically."""
        atomic_savez(path, split=np.array(self.split), ids=np.asarray(self.ids, dtype=str), indices=self.indices,
                     labels=self.labels, probabilities=self.probabilities)

    @classmethod
    def load(cls, path: Path) -> Predictions:
        with np.load(path, allow_pickle=False) as saved:
            return cls(str(saved["split"]), saved["ids"], saved["indices"], saved["labels"],
                       saved["probabilities"])
