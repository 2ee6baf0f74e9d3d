"""Fine-tune strategy, in the two phases the classic tutorials recommend.

1. Train the head on frozen-backbone features (the bottleneck strategy).
2. Unfreeze the top ``--unfreeze N`` blocks (counted in the spec's fine-tune groups, not raw
   layers; ``all``, the default, unfreezes every block) and train them with the head at a lower
   learning rate (AdamW, warm-up then cosine decay).

Speed: with N below the number of blocks, the frozen bottom of the backbone never changes, so
its activations at the freeze point are computed once — for the original images and
``--finetune-views`` augmented views of each — and every epoch runs only the unfrozen blocks
and the head. With every block unfrozen nothing can be cached: images stream through the
whole network with cheap on-the-fly augmentation (random shift, flip, ``--mixup``).
BatchNorm policy: BatchNorm layers stay frozen (inference mode, ImageNet statistics) in the
unfrozen blocks too; only convolution and dense weights move.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from keras_transfer.data.dataset import Split
from keras_transfer.data.stream import AugmentedBatches, ImageBatches
from keras_transfer.base.errors import ConfigError
from keras_transfer.features import FeatureSource
from keras_transfer.backbones.network import POOL_LAYERS, build_classifier
from keras_transfer.strategies.base import FitResult, TrainContext
from keras_transfer.strategies.bottleneck import BottleneckStrategy, keras_head
from keras_transfer.strategies.training import FitOptions, fit, one_hot, options_for


def backbone_of(extractor: keras.Model) -> keras.Model:
    """The backbone model nested inside an extractor."""
    return next(layer for layer in extractor.layers if isinstance(layer, keras.Model))


def group_of(name: str, groups: tuple[tuple[str, ...], ...]) -> int | None:
    """Index of the group holding the longest prefix of a layer name (None: no group names it)."""
    matches = [(len(p), g) for g, prefixes in enumerate(groups) for p in prefixes if name.startswith(p)]
    return max(matches)[1] if matches else None


def cut_candidates(backbone: keras.Model, groups: tuple[tuple[str, ...], ...], first_top: int) -> list:
    """Tensors that may separate groups ``< first_top`` from the rest, best first.

    The output of the last layer named by a lower group suits blocks that end in a named layer
    (inception's ``mixedN`` concatenations, whose insides hold upper-group names too); the
    input of the first layer named by an upper group suits blocks that end in an auto-named
    one (xception's residual ``add_N``). Layers with several inputs cannot start the top;
    with every group unfrozen the cut is the backbone's input.
    """
    named = [(layer, group_of(layer.name, groups)) for layer in backbone.layers]
    lower = [layer for layer, g in named if g is not None and g < first_top]
    upper = [layer for layer, g in named if g is not None and g >= first_top]
    candidates = [lower[-1].output] if lower else [backbone.inputs[0]]
    if upper and not isinstance(upper[0].input, (list, tuple)):
        candidates.append(upper[0].input)
    return candidates


def split_backbone(backbone: keras.Model, groups: tuple[tuple[str, ...], ...],
                   unfreeze: int) -> tuple[keras.Model, keras.Model]:
    """Cuts the backbone before its last ``unfreeze`` groups: (frozen bottom, trainable top).

    The top shares its layers with the backbone, so training it updates the backbone.
    """
    if not 1 <= unfreeze <= len(groups):
        raise ConfigError(f"--unfreeze {unfreeze} is out of range for {backbone.name}",
                          f"1 to {len(groups)} blocks, or 'all'", str(unfreeze))
    for cut in cut_candidates(backbone, groups, len(groups) - unfreeze):
        try:
            bottom = keras.Model(backbone.input, cut, name="frozen_bottom")
            top = keras.Model(cut, backbone.output, name="trainable_top")
        except ValueError:
            continue  # the tensor does not separate the blocks: the top needs layers below it
        for layer in top.layers:
            layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
        return bottom, top
    raise ConfigError(f"cannot cut {backbone.name} before its last {unfreeze} blocks",
                      "a single tensor between blocks", hint="try another --unfreeze")


def freeze_point_source(context: TrainContext, bottom: keras.Model) -> FeatureSource:
    """A FeatureSource whose "features" are the frozen bottom's activations (cached like any)."""
    features = context.features
    extractor = features.model
    pixels = keras.Input(extractor.input_shape[1:], name="pixels")
    model = keras.Model(pixels, bottom(extractor.get_layer("normalize")(pixels)), name="freeze_point")
    identity = {**features.identity, "pooling": None, "cut": bottom.output.name, "cut_shape": list(bottom.output.shape[1:])}
    return FeatureSource(model, identity, context.checkpoints / "activations", features.resize_mode,
                         features.options, features.seed, features.cache)


def activations(source: FeatureSource, split: Split, views: int) -> tuple[np.ndarray, np.ndarray]:
    """(activations of the original + ``views`` augmented views of each image, their labels)."""
    values, indices = source.views(split, views)
    return values.reshape(-1, *values.shape[2:]), np.tile(split.labels[indices], len(values))


def phase_two_options(config, default_epochs: int, deadline: float | None = None) -> FitOptions:
    options = options_for(config, default_epochs, config.finetune_lr, config.finetune_epochs)
    return dataclasses.replace(options, schedule="cosine", deadline=deadline)


def unfreeze_all(extractor: keras.Model) -> None:
    """Every backbone weight trainable but BatchNorm's (which also runs in inference mode)."""
    extractor.trainable = True
    extractor.get_layer("normalize").trainable = False  # the fixed preprocessing (a 1x1 conv for BGR weights)
    for layer in backbone_of(extractor).layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


class FinetuneStrategy:
    """Head on frozen features, then the top blocks fine-tuned (on cached activations if it can)."""

    name = "finetune"
    default_epochs = 10

    def fit(self, context: TrainContext) -> FitResult:
        config = context.config
        extractor = context.features.model  # cut first: a bad --unfreeze fails before any training
        groups = context.spec.finetune_groups
        whole = config.unfreeze in (0, len(groups))
        cut = None if whole else split_backbone(backbone_of(extractor), groups, config.unfreeze)
        warm = BottleneckStrategy(learn_from_val=False).fit(context)  # early stopping below reads val
        head = warm.head if warm.classifier else keras_head(warm.head, config, len(context.dataset.class_names))
        head_history = {f"head_{k}": v for k, v in warm.history.items() if k != "interrupted"}
        if "interrupted" in warm.history:  # Ctrl-C while training the head: stop, fine-tune next time
            return FitResult(warm.classifier, head, {**head_history, "interrupted": [1.0]})
        keras.utils.set_random_seed(config.seed)
        history = self._whole(context, head) if whole else self._top(context, head, *cut)
        selection = {"head": warm.selection, "epochs_chosen_on": f"{context.dataset.val.name} ({len(context.dataset.val)} images)"}
        return FitResult(build_classifier(extractor, head, config.resize), head, {**head_history, **history},
                         backbone_changed=True, selection=selection)

    def _whole(self, context: TrainContext, head: keras.Model) -> dict:
        """Every block trained on streamed, augmented images."""
        config, dataset = context.config, context.dataset
        extractor, n = context.features.model, len(dataset.class_names)
        unfreeze_all(extractor)
        size = int(extractor.input_shape[1])
        pixels = keras.Input((size, size, 3), name="pixels")
        model = keras.Model(pixels, head(extractor(pixels)), name="finetune_training")
        train = AugmentedBatches(dataset.train, size, n, config.batch_size, config.resize, config.seed, config.mixup)
        val = ImageBatches(dataset.val, size, n, config.batch_size, config.resize)
        return fit(model, train, val, phase_two_options(config, self.default_epochs, context.deadline),
                   context.checkpoints, self.name, dataset.train.labels, keep_start=True)

    def _top(self, context: TrainContext, head: keras.Model, bottom: keras.Model, top: keras.Model) -> dict:
        """The top blocks trained on cached freeze-point activations of the images and their views."""
        config, dataset = context.config, context.dataset
        source, n = freeze_point_source(context, bottom), len(dataset.class_names)
        train_x, train_y = activations(source, dataset.train, config.finetune_views)
        val_x, val_y = activations(source, dataset.val, 0)
        inputs = keras.Input(train_x.shape[1:], name="activations")
        x = top(inputs)
        if config.pooling in POOL_LAYERS:
            x = POOL_LAYERS[config.pooling](name="pool")(x)
        model = keras.Model(inputs, head(x), name="finetune_training")
        return fit(model, (train_x, one_hot(train_y, n)), (val_x, one_hot(val_y, n)),
                   phase_two_options(config, self.default_epochs, context.deadline), context.checkpoints, self.name, train_y,
                   keep_start=True)
