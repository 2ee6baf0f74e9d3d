"""Frozen strategy: a head trained on freshly augmented images every epoch, the backbone frozen.

The frozen backbone is a fixed function, so its pass runs on the fast feature engine
(OpenVINO / ONNX Runtime, BatchNorm in inference mode exactly as in Keras with
``training=False``): epoch ``e`` sees augmented view ``e + 1`` of every training image
(flip, rotation, zoom, shift, shear, colour; a deterministic function of the image, the view
number and the seed), extracted by the engine and kept in the shared cache, and only the head
trains in Keras. An epoch costs about one inference pass, memory holds one epoch's feature
vectors, and a re-run reads every view from the cache.

BatchNorm policy: every backbone layer, BatchNorm included, has ``trainable=False`` and the
backbone is called with ``training=False``, so BatchNorm always normalises with its ImageNet
moving statistics and never updates them — on small datasets, updating them destroys the
pretrained features (the Keras transfer-learning guide's advice).
"""

from __future__ import annotations

import math
import threading

import keras
import numpy as np

from keras_transfer.data.stream import ImageBatches
from keras_transfer.backbones.heads import build_head_for
from keras_transfer.backbones.network import build_classifier
from keras_transfer.strategies.base import FitResult, TrainContext
from keras_transfer.strategies.training import fit, one_hot, options_for


def augmentation(seed: int) -> keras.Sequential:
    """The tutorials' on-the-fly augmentation: flip, rotation, zoom, shift, contrast."""
    return keras.Sequential([
        keras.layers.RandomFlip("horizontal", seed=seed),
        keras.layers.RandomRotation(0.05, fill_mode="reflect", seed=seed),
        keras.layers.RandomZoom(0.1, fill_mode="reflect", seed=seed),
        keras.layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed),
        keras.layers.RandomContrast(0.1, seed=seed),
    ], name="augmentation")


def fit_streamed(context: TrainContext, features: keras.Model, name: str, default_epochs: int,
                 frozen: bool) -> FitResult:
    """Trains augmentation -> ``features`` -> a new head end to end on streamed image batches.

    ``frozen`` features run with ``training=False`` (BatchNorm in inference mode).
    """
    config, dataset = context.config, context.dataset
    keras.utils.set_random_seed(config.seed)
    size, n = int(features.input_shape[1]), len(dataset.class_names)
    head = build_head_for(features.output_shape[1:], n, config)
    inputs = keras.Input((size, size, 3), name="pixels")
    x = augmentation(config.seed)(inputs)
    x = features(x, training=False) if frozen else features(x)
    model = keras.Model(inputs, head(x), name=f"{name}_training")
    train = ImageBatches(dataset.train, size, n, config.batch_size, config.resize, shuffle_seed=config.seed)
    val = ImageBatches(dataset.val, size, n, config.batch_size, config.resize)
    history = fit(model, train, val, options_for(config, default_epochs), context.checkpoints, name,
                  dataset.train.labels)
    return FitResult(build_classifier(features, head, config.resize), head, history, backbone_changed=not frozen)


class ViewBatches(keras.utils.PyDataset):
    """(features, one-hot labels) batches of augmented view ``epoch + 1`` of a split, reshuffled per epoch."""

    def __init__(self, source, split, num_classes: int, batch_size: int, seed: int):
        super().__init__(workers=1, use_multiprocessing=False, max_queue_size=2)
        self.source, self.split, self.num_classes = source, split, num_classes
        self.batch_size, self.seed, self.epoch, self.lock = batch_size, seed, 0, threading.Lock()
        self.features, self.labels = self._load()
        self.length = math.ceil(len(self.labels) / batch_size)

    def _load(self) -> tuple[np.ndarray, np.ndarray]:
        features, indices = self.source.view(self.split, self.epoch + 1, desc=f"epoch {self.epoch + 1} views")
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(indices))
        return features[order], self.split.labels[indices][order]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, batch: int):
        with self.lock:  # the next epoch's views are extracted when its first batch is asked for
            if self.features is None:
                self.features, self.labels = self._load()
        rows = slice(batch * self.batch_size, (batch + 1) * self.batch_size)
        return self.features[rows], np.eye(self.num_classes, dtype=np.float32)[self.labels[rows]]

    def on_epoch_end(self) -> None:
        with self.lock:
            self.epoch, self.features = self.epoch + 1, None


class FrozenStrategy:
    """Every epoch: fresh augmented views through the frozen backbone on the engine, then the head."""

    name = "frozen"
    default_epochs = 10

    def fit(self, context: TrainContext) -> FitResult:
        config, dataset, source = context.config, context.dataset, context.features
        n = len(dataset.class_names)
        train = ViewBatches(source, dataset.train, n, config.batch_size, config.seed)
        features, indices = source(dataset.val)
        val = features, one_hot(dataset.val.labels[indices], n)
        keras.utils.set_random_seed(config.seed)  # after the features: building a deferred extractor draws numbers
        head = build_head_for(features.shape[1:], n, config)
        history = fit(head, train, val, options_for(config, self.default_epochs), context.checkpoints, self.name,
                      dataset.train.labels)
        selection = {"epochs_chosen_on": f"{dataset.val.name} ({len(dataset.val)} images)"}
        return FitResult(build_classifier(source.model, head, config.resize), head, history, selection=selection)
