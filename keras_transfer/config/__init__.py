"""The config layer: ``TrainConfig``, the one description of a training run, and what it reads
(its dataset split as at training, its backbone's features)."""

from keras_transfer.config.sources import dataset_of, feature_source
from keras_transfer.config.train_config import CONVERTED, HEAD_PRESETS, TUNED_STRATEGIES, TrainConfig, weights_choice

__all__ = ["CONVERTED", "HEAD_PRESETS", "TUNED_STRATEGIES", "TrainConfig", "dataset_of", "feature_source",
           "weights_choice"]
