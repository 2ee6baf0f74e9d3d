"""The run layer: a trained run's folder (``Run``, ``Files``), its one inference rule (``RunModel``),
and the steps on it: ``train``, ``evaluate``, ``predict``.

Example:
    >>> from keras_transfer.run import RunModel, train  # doctest: +SKIP
"""

from keras_transfer.config import dataset_of, feature_source
from keras_transfer.data.layout import collect_images
from keras_transfer.run.evaluate import eval_predictions, evaluate, split_features
from keras_transfer.run.folder import Files, Run
from keras_transfer.run.model import Answer, RunModel
from keras_transfer.run.predict import evaluate_outliers, predict
from keras_transfer.run.train import train, uses_validation

__all__ = ["Answer", "Files", "Run", "RunModel", "collect_images", "dataset_of", "eval_predictions", "evaluate",
           "evaluate_outliers", "feature_source", "predict", "split_features", "train", "uses_validation"]
