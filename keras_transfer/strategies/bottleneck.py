"""Bottleneck strategy: frozen-backbone features extracted once, a small head trained on them."""

from __future__ import annotations

import keras
import numpy as np

from keras_transfer import log
from keras_transfer.model import build_classifier, build_head
from keras_transfer.strategies.base import FitResult, TrainContext


class EpochProgress(keras.callbacks.Callback):
    """One progress bar over epochs, showing the latest validation metrics."""

    def __init__(self, epochs: int):
        super().__init__()
        self.bar = log.progress(total=epochs, desc="head", unit="epoch")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.bar.set_postfix(val_loss=f"{logs.get('val_loss', float('nan')):.4f}",
                             val_acc=f"{logs.get('val_accuracy', float('nan')):.3f}")
        self.bar.update(1)

    def on_train_end(self, logs=None):
        self.bar.close()


def fit_head(head: keras.Model, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
             context: TrainContext) -> dict[str, list[float]]:
    """Trains ``head`` with Adam and early stopping on validation loss (best weights restored)."""
    config = context.config
    head.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                 loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience,
                                         restore_best_weights=True)
    history = head.fit(*train, validation_data=val, epochs=config.epochs, batch_size=config.batch_size,
                       callbacks=[stop, EpochProgress(config.epochs)], verbose=0, shuffle=True)
    return {k: [float(v) for v in values] for k, values in history.history.items()}


class BottleneckStrategy:
    """Extract pooled features once (saved beside the run), then fit a Dense head on them.

    With ``augment_views`` K > 0 the head trains on the original plus K cached augmented views
    of every training image; validation uses the originals only.
    """

    name = "bottleneck"

    def fit(self, context: TrainContext) -> FitResult:
        config, dataset = context.config, context.dataset
        keras.utils.set_random_seed(config.seed)
        features, indices = context.features.views(dataset.train, config.augment_views)
        data = {"train": (features.reshape(-1, *features.shape[2:]),
                          np.tile(dataset.train.labels[indices], len(features)))}
        features, indices = context.features(dataset.val)
        data["val"] = features, dataset.val.labels[indices]
        head = build_head(data["train"][0].shape[1:], len(dataset.class_names), config.hidden_units,
                          config.dropout, config.seed)
        history = fit_head(head, data["train"], data["val"], context)
        classifier = build_classifier(context.features.extractor, head, config.resize)
        return FitResult(classifier, head, history)
