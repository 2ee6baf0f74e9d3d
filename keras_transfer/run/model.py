"""The one inference rule of a trained run: uint8 pixels -> calibrated probabilities + unknown scores.

Every consumer asks a ``RunModel`` what a run answers: ``predict`` (files), ``serve`` (uploaded
pixels), ``evaluate`` and train's own held-out figures (a split's cached features), the report,
``explain`` and the export parity table. The rule, written once here:

1. the image's views: the image itself, its mirror image (``--flip``), then ``--tta-views``
   augmented views (seeded by the image's content hash, as the feature cache is);
2. each view through the backbone's compiled engine (OpenVINO / ONNX Runtime; a fine-tuned
   backbone is compiled from ``model.keras`` the same way), to its features;
3. the head on each view's features (a solved ``LinearHead`` in NumPy, or the Keras head of
   ``model.keras``), the probabilities averaged over the views;
4. the calibration temperature applied to that mean;
5. the unknown score: the k-NN cosine distance of the image's own (view 0) features.

Exported files are this rule compiled into one graph (``export/build.py``); the consistency
test checks every consumer and format against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_transfer.config import TUNED_STRATEGIES, feature_source
from keras_transfer.data.augment import augment
from keras_transfer.data.dataset import Split
from keras_transfer.evaluation.calibration import apply_temperature
from keras_transfer.evaluation.predictions import Predictions
from keras_transfer.features import FeatureSource, view_numbers
from keras_transfer.features.keys import array_hash
from keras_transfer.inference.head import LinearHead
from keras_transfer.inference.unknown import KnnUnknown
from keras_transfer.run.folder import Run

CHUNK = 2048  # images whose features are held at once when predicting files (memory bounded)


@dataclass(frozen=True)
class Answer:
    """What a run answers for N images: calibrated probabilities (N, C), unknown scores (N,)
    (NaN without a scorer) and, when asked, the images' own (view 0) features (N, ...)."""

    probabilities: np.ndarray
    unknown_scores: np.ndarray
    features: np.ndarray | None = None


@dataclass
class RunModel:
    """A trained run, opened once, answering for pixels, files and dataset splits.

    Example:
        >>> model = RunModel.open("runs/ants")  # doctest: +SKIP
        >>> answer = model.predict_pixels(pixels)  # uint8 (N, S, S, 3), S = model.size  # doctest: +SKIP
        >>> answer.probabilities.shape  # doctest: +SKIP
        (N, 2)
    """

    class_names: list[str]
    source: FeatureSource
    head: object  # LinearHead (solved) or a Keras head model
    views: tuple[int, ...] = (0,)
    temperature: float = 1.0
    unknown: KnnUnknown | None = None
    run: Run | None = None

    @classmethod
    def open(cls, run: str | Path | Run | RunModel, executor=None) -> RunModel:
        """The model of a run folder (a ``RunModel`` is returned as it is). ``executor`` extracts
        the features of files (None: ``"local"``)."""
        if isinstance(run, RunModel):
            return run
        run = Run.open(run)
        config, names = run.config, run.class_names
        head = run.solved_head()
        if head is not None and config.strategy not in TUNED_STRATEGIES and head.kernel.shape[1] == len(names):
            source = feature_source(config, run.path, executor=executor or "local")
        else:  # a head or backbone trained by Keras: both parts of model.keras
            model = run.model
            head = model.get_layer("head")
            source = feature_source(config, run.path, model.get_layer("features"), executor=executor or "local")
        return cls(names, source, head, tuple(view_numbers(config.tta_views, config.flip)), run.temperature,
                   run.unknown(), run)

    @property
    def solved(self) -> bool:
        """Whether the head is a solved ``LinearHead`` (Keras-free inference)."""
        return isinstance(self.head, LinearHead)

    @property
    def size(self) -> int:
        """The side of the square uint8 images the model takes."""
        return self.source.size

    @property
    def resize_mode(self) -> str:
        return self.source.resize_mode

    @property
    def flip(self) -> bool:
        """Whether the mirror image is one of the views."""
        return len(self.views) > 1 and self.views[1] < 0

    @property
    def augmented(self) -> int:
        """Augmented (``--tta-views``) views beyond the image and its mirror."""
        return len(self.views) - 1 - self.flip

    @property
    def threshold(self) -> float | None:
        """Unknown scores above this flag an image as unlike the training images (None: no scorer)."""
        return None if self.unknown is None else self.unknown.threshold

    def head_probabilities(self, features: np.ndarray) -> np.ndarray:
        """One view's features (N, ...) -> the head's own (uncalibrated) probabilities (N, C)."""
        if self.solved:
            return self.head.predict(features)
        if len(features) == 0:
            return np.zeros((0, len(self.class_names)), np.float32)
        return np.concatenate([np.asarray(self.head.predict_on_batch(features[i:i + 256]), np.float32)
                               for i in range(0, len(features), 256)])

    def raw_probabilities(self, view_features: np.ndarray) -> np.ndarray:
        """Features of every view (V, N, ...) -> the head's probabilities averaged over the views (N, C)."""
        return np.mean([self.head_probabilities(v) for v in view_features], axis=0, dtype=np.float32)

    def answer(self, view_features: np.ndarray, with_features: bool = False) -> Answer:
        """Features of every view (V, N, ...) -> the run's answer."""
        probabilities = apply_temperature(self.raw_probabilities(view_features), self.temperature)
        scores = (self.unknown.scores(view_features[0]) if self.unknown is not None
                  else np.full(view_features.shape[1], np.nan, np.float32))
        return Answer(probabilities, scores, view_features[0] if with_features else None)

    def predict_pixels(self, pixels: np.ndarray, contents: list[str] | None = None,
                       with_features: bool = False) -> Answer:
        """The answer for uint8 images (N, S, S, 3) resized to ``size`` by the run's ``resize_mode``.

        ``contents`` (the hash of each image's file bytes, ``features.keys.file_hash``) seeds
        augmented views as for files; without it, the pixels' own hash does.
        """
        pixels = np.asarray(pixels, np.uint8)
        if pixels.ndim != 4 or pixels.shape[1:] != (self.size, self.size, 3):
            raise ValueError(f"expected uint8 images of shape (N, {self.size}, {self.size}, 3), got {pixels.shape}")
        if len(pixels) == 0:
            return self.answer(np.zeros((len(self.views), 0, *self.source.engine.feature_shape), np.float32))
        if contents is None:  # only augmented views use them
            contents = [array_hash(image) for image in pixels] if self.augmented else [""] * len(pixels)
        maker = self.source.engine.maker
        batch = np.stack([augment(image, content, view, maker.seed, maker.policy)
                          for view in self.views for image, content in zip(pixels, contents)])
        features = self.source.engine.features(batch)
        return self.answer(features.reshape(len(self.views), len(pixels), *features.shape[1:]), with_features)

    def predict_files(self, paths: list[Path], desc: str = "predict") -> tuple[Answer, dict[int, str]]:
        """The answer for image files (rows of unreadable files are NaN) and {index: reason} of those."""
        probabilities = np.full((len(paths), len(self.class_names)), np.nan, np.float32)
        scores = np.full(len(paths), np.nan, np.float32)
        failures: dict[int, str] = {}
        for start in range(0, len(paths), CHUNK):
            chunk = Split("predict", list(paths[start:start + CHUNK]), np.zeros(min(CHUNK, len(paths) - start), np.int64))
            features, indices, bad = self._views_of(chunk, desc)
            failures.update({start + i: reason for i, reason in bad})
            if len(indices):
                answer = self.answer(features)
                probabilities[start + indices], scores[start + indices] = answer.probabilities, answer.unknown_scores
        return Answer(probabilities, scores), failures

    def predict_split(self, split: Split) -> Predictions:
        """The head's raw (uncalibrated) probabilities of a dataset split, from its cached views:
        what ``predictions.npz`` holds (``Predictions.with_temperature`` calibrates them)."""
        features, indices = self.source.views(split, self.augmented, self.flip)
        return Predictions(split.name, np.array(split.ids(), dtype=str)[indices], indices, split.labels[indices],
                           self.raw_probabilities(features))

    @property
    def multi_label(self) -> bool:
        """Whether an image may carry several labels (one sigmoid per label, a threshold each)."""
        return self.solved and self.head.multi_label

    def labels_of(self, probabilities: np.ndarray) -> list[str]:
        """The labels an image carries: at or above their thresholds (several-label runs), else the top class."""
        if not self.multi_label:
            return [self.class_names[int(np.argmax(probabilities))]]
        return [name for name, p, t in zip(self.class_names, probabilities, self.head.thresholds) if p >= t]

    def top_k(self, probabilities: np.ndarray, score: float, k: int) -> dict:
        """One image's answer as the API shows it: the top ``k`` classes (several-label runs: also
        the set of labels it carries), and the unknown flag."""
        order = np.argsort(-probabilities)[:k]
        result = {"predictions": [{"label": self.class_names[i], "index": int(i), "probability": float(probabilities[i])}
                                  for i in order]}
        if self.multi_label:
            result["labels"] = self.labels_of(probabilities)
        if self.unknown is not None:
            result.update(unknown=bool(score > self.unknown.threshold), unknown_score=float(score))
        return result


    def _views_of(self, split: Split, desc: str) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]:
        """(features (V, M, ...), indices (M,) of the images read, failures) through the shared cache only."""
        out = np.zeros((len(self.views), len(split), *self.source.engine.feature_shape), np.float32)
        have = np.zeros((len(self.views), len(split)), bool)

        def sink(position: int, rows: list[int], vector: np.ndarray) -> None:
            out[position, rows] = vector
            have[position, rows] = True

        failures = self.source.engine.fill(split, self.views, sink, desc=desc)
        indices = np.flatnonzero(have.all(axis=0))
        return out[:, indices], indices, failures
