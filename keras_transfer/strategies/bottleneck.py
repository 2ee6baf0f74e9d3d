"""Bottleneck strategy: frozen-backbone features extracted once, a small head trained on them."""

from __future__ import annotations

import keras
import numpy as np

from keras_transfer.heads import build_head_for
from keras_transfer.model import build_classifier
from keras_transfer.strategies.base import FitResult, TrainContext
from keras_transfer.strategies.training import fit, one_hot, options_for, refit


class BottleneckStrategy:
    """Extract pooled features once (saved beside the run), then fit a head on them.

    With ``augment_views`` K > 0 the head trains on the original plus K cached augmented views
    of every training image; validation uses the originals only. With ``refit`` a fresh head is
    then trained on training + validation features for the epochs early stopping chose (the run
    reports on its test split, the only one it has not seen).
    """

    name = "bottleneck"
    default_epochs = 200

    def fit(self, context: TrainContext) -> FitResult:
        config, dataset = context.config, context.dataset
        keras.utils.set_random_seed(config.seed)
        n = len(dataset.class_names)
        features, indices = context.features.views(dataset.train, config.augment_views)
        train_labels = np.tile(dataset.train.labels[indices], len(features))
        train = features.reshape(-1, *features.shape[2:]), one_hot(train_labels, n)
        features, indices = context.features(dataset.val)
        val_labels = dataset.val.labels[indices]
        val = features, one_hot(val_labels, n)
        head = build_head_for(train[0].shape[1:], n, config)
        options = options_for(config, self.default_epochs)
        history = fit(head, train, val, options, context.checkpoints, "head", train_labels)
        if config.refit and "interrupted" not in history:
            keras.utils.set_random_seed(config.seed)
            fresh = build_head_for(train[0].shape[1:], n, config)
            both = np.concatenate([train[0], val[0]]), np.concatenate([train[1], val[1]])
            more = refit(fresh, both, history, options, np.concatenate([train_labels, val_labels]))
            head = head if "interrupted" in more else fresh
            history = {**history, **more}
        return FitResult(build_classifier(context.features.extractor, head, config.resize), head, history)
