"""``evaluate``: a trained run's figures on its held-out split (or on another dataset's), by its ``RunModel``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from keras_transfer.base.errors import DatasetError, unknown_choice
from keras_transfer.config import dataset_of
from keras_transfer.data.dataset import Split
from keras_transfer.evaluation.calibration import calibration
from keras_transfer.evaluation.metrics import classification_metrics
from keras_transfer.evaluation.multilabel import multilabel_metrics
from keras_transfer.evaluation.predictions import Predictions
from keras_transfer.run.folder import Run
from keras_transfer.run.model import RunModel
from keras_transfer.run.notebook import Evaluation


def eval_predictions(run: str | Path | Run | RunModel, data: str | Path | None = None) -> Predictions:
    """Raw (uncalibrated) probabilities of a run's held-out split (test, else val), or of another dataset's.

    Args:
        run: The run folder (or its opened ``RunModel``).
        data: Optional dataset whose class names match the run's; its val/test split is used.
    """
    model = run if isinstance(run, RunModel) else RunModel.open(run)
    config = model.run.config
    if data is not None:
        config = dataclasses.replace(config, data=str(data))
    dataset = dataset_of(config)
    if dataset.class_names != model.class_names:
        raise DatasetError(f"classes of {config.data} differ from the run's",
                           f"{model.class_names}", f"{dataset.class_names}")
    return model.predict_split(dataset.eval_split)


def evaluate(run: str | Path | Run, data: str | Path | None = None) -> Evaluation:
    """Metrics of a trained run on its held-out split (test, else val), or on another dataset:
    a plain dict that also displays itself in Jupyter.

    Args:
        run: The run folder.
        data: Optional dataset whose class names match the run's; its val/test split is used.

    Example:
        >>> evaluate("runs/ants")["accuracy"]  # doctest: +SKIP
        0.954...
    """
    model = RunModel.open(run)
    raw = eval_predictions(model, data)
    if model.multi_label:
        metrics = multilabel_metrics(raw.labels, raw.probabilities, model.class_names, model.head.thresholds)
        return Evaluation(metrics, split=raw.split)
    predictions = raw.with_temperature(model.temperature)
    metrics = classification_metrics(predictions.labels, predictions.probabilities, model.class_names)
    metrics["split"] = predictions.split
    metrics["calibration"] = {"temperature": model.temperature,
                              "ece_before": calibration(raw.labels, raw.probabilities).ece,
                              "ece_after": calibration(predictions.labels, predictions.probabilities).ece}
    return Evaluation(metrics)


def split_features(run: str | Path | Run | RunModel, split: str = "train") -> tuple[Split, np.ndarray, np.ndarray]:
    """Pooled backbone features of one split of a run's dataset (saved by train, else extracted).

    Returns:
        (the split, features (M, D), indices (M,) into the split of the images that decoded).
    """
    model = run if isinstance(run, RunModel) else RunModel.open(run)
    dataset = dataset_of(model.run.config)
    if split not in dataset.splits:
        raise unknown_choice("split", split, dataset.splits)
    features, indices = model.source(dataset.splits[split])
    return dataset.splits[split], features, indices
