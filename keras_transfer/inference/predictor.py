"""Predictions of a run without Keras or torch: images -> feature engine -> NumPy head.

A solver-fitted run keeps its head as ``head.npz`` (kernel, bias; plain arrays, no pickle)
beside ``model.keras``. Its backbone is the frozen, pretrained one whose compiled engine
(OpenVINO / ONNX Runtime, cached per identity) the features came from, so prediction decodes
images in threads, streams them through that engine in batches (memory bounded whatever the
number of images) and applies the head: a process that predicts imports neither keras nor
torch. Runs whose head or backbone was trained by Keras (hidden layers, other heads,
fine-tuning) fall back to ``model.keras``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_transfer.data.dataset import Split
from keras_transfer.features import FeatureSource, view_numbers
from keras_transfer.inference.unknown import UNKNOWN_FILE, KnnUnknown
from keras_transfer.paths import NPZ_ERRORS
from keras_transfer.run import Run, feature_source
from keras_transfer.strategies.solver import LinearHead

HEAD_FILE = "head.npz"


def save_head(path: Path, head: LinearHead) -> None:
    from keras_transfer.paths import atomic_savez

    atomic_savez(path, kernel=head.kernel, bias=head.bias)


@dataclass
class Predictor:
    """The engine and head of a run whose backbone is frozen and whose head was solved.

    Example:
        >>> predictor = Predictor.open(Run.open("runs/ants"))  # doctest: +SKIP
        >>> probabilities, unknown_scores, failures = predictor.probabilities([Path("bee.jpg")])  # doctest: +SKIP
    """

    run: Run
    source: FeatureSource
    head: LinearHead
    unknown: KnnUnknown | None = None

    @classmethod
    def open(cls, run: Run, executor=None) -> Predictor | None:
        """The Keras-free predictor of ``run``, or None when only ``model.keras`` can predict it.

        ``executor`` extracts the features (None: ``"local"``, whatever the run was trained with)."""
        from keras_transfer.config import TUNED_STRATEGIES

        config = run.config
        if config.strategy in TUNED_STRATEGIES or config.tta_views or not (run.path / HEAD_FILE).is_file():
            return None
        try:
            with np.load(run.path / HEAD_FILE, allow_pickle=False) as saved:
                head = LinearHead(saved["kernel"], saved["bias"])
            unknown = KnnUnknown.load(run.path / UNKNOWN_FILE) if (run.path / UNKNOWN_FILE).is_file() else None
        except NPZ_ERRORS as error:
            raise run.damaged(f"{HEAD_FILE} or {UNKNOWN_FILE}", error) from error
        if head.kernel.shape[1] != len(run.class_names):
            return None
        return cls(run, feature_source(config, run.path, executor=executor or "local"), head, unknown)

    def probabilities(self, paths: list[Path]) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
        """Class probabilities (N, C) and unknown scores (N,) of ``paths`` (NaN for unreadable
        files, and scores without a scorer) and {index: reason} of the unreadable files."""
        views = view_numbers(flip=self.run.config.flip)  # probabilities averaged over them, as evaluated
        out = np.zeros((len(paths), len(self.run.class_names)), np.float32)
        scores = np.full(len(paths), np.nan, np.float32)

        def sink(position: int, rows: list[int], vector: np.ndarray) -> None:
            out[rows] += self.head.predict(vector[None])[0] / len(views)
            if self.unknown is not None and position == 0:
                scores[rows] = self.unknown.scores(vector[None])[0]

        split = Split("predict", list(paths), np.zeros(len(paths), np.int64))
        failures = self.source.engine.fill(split, views, sink, desc="predict")
        out[list(dict(failures))] = np.nan
        return out, scores, dict(failures)
