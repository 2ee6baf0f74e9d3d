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
from keras_transfer.heads import build_head_for
from keras_transfer.model import build_classifier
from keras_transfer.strategies.base import FitResult, TrainContext
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


class FrozenStrategy:
    """Streams images through augmentation -> frozen backbone -> trainable head, every epoch."""

    name = "frozen"
    default_epochs = 10

    def fit(self, context: TrainContext) -> FitResult:
        extractor = context.features.model
        extractor.trainable = False
        return fit_streamed(context, extractor, self.name, self.default_epochs, frozen=True)
