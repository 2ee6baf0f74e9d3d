"""Frozen strategy: the backbone frozen (BatchNorm in inference mode) inside the training graph,
a head trained end to end on streamed, augmented image batches.

BatchNorm policy: every backbone layer, BatchNorm included, has ``trainable=False`` and the
backbone is called with ``training=False``, so BatchNorm always normalises with its ImageNet
moving statistics and never updates them — on small datasets, updating them destroys the
pretrained features (the Keras transfer-learning guide's advice).
"""

from __future__ import annotations

import keras

from keras_transfer.data.stream import ImageBatches
from keras_transfer.model import build_classifier
from keras_transfer.strategies.base import FitResult, TrainContext
from keras_transfer.heads import build_head_for
from keras_transfer.strategies.training import fit, options_for


def augmentation(seed: int) -> keras.Sequential:
    """The tutorials' on-the-fly augmentation: flip, rotation, zoom, shift, contrast."""
    return keras.Sequential([
        keras.layers.RandomFlip("horizontal", seed=seed),
        keras.layers.RandomRotation(0.05, fill_mode="reflect", seed=seed),
        keras.layers.RandomZoom(0.1, fill_mode="reflect", seed=seed),
        keras.layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed),
        keras.layers.RandomContrast(0.1, seed=seed),
    ], name="augmentation")


class FrozenStrategy:
    """Streams images through augmentation -> frozen backbone -> trainable head, every epoch."""

    name = "frozen"
    default_epochs = 10

    def fit(self, context: TrainContext) -> FitResult:
        config, dataset = context.config, context.dataset
        keras.utils.set_random_seed(config.seed)
        extractor = context.features.extractor
        size = int(extractor.input_shape[1])
        extractor.trainable = False
        head = build_head_for(extractor.output_shape[1:], len(dataset.class_names), config)
        inputs = keras.Input((size, size, 3), name="pixels")
        x = augmentation(config.seed)(inputs)
        model = keras.Model(inputs, head(extractor(x, training=False)), name="frozen_training")
        n = len(dataset.class_names)
        train = ImageBatches(dataset.train, size, n, config.batch_size, config.resize, shuffle_seed=config.seed)
        val = ImageBatches(dataset.val, size, n, config.batch_size, config.resize)
        history = fit(model, train, val, options_for(config, self.default_epochs), context.checkpoints,
                      self.name, dataset.train.labels)
        return FitResult(build_classifier(extractor, head, config.resize), head, history)
