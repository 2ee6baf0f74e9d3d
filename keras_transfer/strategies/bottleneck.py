"""Bottleneck strategy: frozen-backbone features extracted once, a small head fit on them.

The default head (``linear``, no hidden layers) is fit in seconds by the full-batch solver
(``strategies/solver.py``): L2 strength by cross-validation inside the training images, so the
validation split is never looked at and can serve as the held-out one. Other heads (hidden
layers, ``gap_dense_bn``, spatial ``flatten_bn`` / ``conv``) and ``--solver keras`` train with
the Keras epoch loop, early-stopped on the validation split.
"""

from __future__ import annotations

import numpy as np

from keras_transfer.base import log

from keras_transfer.config import TrainConfig
from keras_transfer.strategies.base import FitResult, TrainContext
from keras_transfer.inference.head import LinearHead
from keras_transfer.strategies.multilabel_solver import fit_multilabel_head
from keras_transfer.strategies.solver import fit_linear_head


def uses_solver(config: TrainConfig) -> bool:
    """True when the bottleneck head is fit by the solver rather than the Keras loop."""
    return (config.solver != "keras" and config.head == "linear" and not config.hidden_units
            and config.pooling != "spatial" and not config.refit)


def keras_head(linear: LinearHead, config: TrainConfig, num_classes: int):
    """The solver's head as the Keras ``linear`` head (dropout from ``config``), e.g. to fine-tune from."""
    from keras_transfer.backbones.heads import build_head_for

    head = build_head_for((linear.kernel.shape[0],), num_classes, config)
    head.get_layer("predictions").set_weights([linear.kernel, linear.bias])
    return head


IMBALANCE = 3.0  # largest / smallest class above which the solved head balances the classes by default


def class_weighting(choice: str | None, y: np.ndarray, n_classes: int) -> tuple[str | None, dict]:
    """The solver's class weights (``"auto"``: balanced, or None) and how they were decided.

    ``choice`` None balances when the largest training class holds more than ``IMBALANCE`` times
    the images of the smallest (said on the terminal); ``"auto"`` always; ``"none"`` never.
    """
    counts = np.bincount(y, minlength=n_classes)
    present = counts[counts > 0]
    ratio = float(present.max() / present.min()) if len(present) else 1.0
    weight = "auto" if choice == "auto" or (choice is None and ratio > IMBALANCE) else None
    if choice is None and weight:
        log.info(f"classes imbalanced (the largest has {ratio:.1f}x the images of the smallest): the head balances "
                 "them (--class-weight none to turn it off)")
    why = {"auto": "--class-weight auto", "none": "--class-weight none"}.get(choice, f"default: imbalance {ratio:.1f}x "
                                                                                      f"{'>' if weight else '<='} {IMBALANCE:g}x")
    return weight, {"class_weight": {"balanced": bool(weight), "imbalance": round(ratio, 3), "why": why}}


class BottleneckStrategy:
    """Extract pooled features once (saved beside the run), then fit a head on them.

    With ``augment_views`` K > 0 the head trains on the original plus K cached augmented views
    of every training image; scoring uses the originals only. With ``refit`` (Keras loop) a
    fresh head is then trained on training + validation features for the epochs early stopping
    chose.
    """

    name = "bottleneck"
    default_epochs = 200

    def __init__(self, learn_from_val: bool = True):
        # With a test split, the solver also learns from the validation images, unless a later
        # choice (fine-tuning's early stopping, auto's comparison) is made on them.
        self.learn_from_val = learn_from_val

    def fit(self, context: TrainContext) -> FitResult:
        if uses_solver(context.config):
            return self._solve(context)
        return self._keras_loop(context)

    def _solve(self, context: TrainContext) -> FitResult:
        config, dataset = context.config, context.dataset
        pools = [dataset.train] + ([dataset.val] if self.learn_from_val and "test" in dataset.splits else [])
        views, labels = [], []
        for split in pools:
            features, indices = context.features.views(split, config.augment_views, config.flip)
            views.append(features)
            labels.append(split.labels[indices])
        if dataset.multi_label:
            solved = fit_multilabel_head(np.concatenate(views, axis=1), np.concatenate(labels), config.seed,
                                         config.threshold_metric)
            weighting = {}
        else:
            y = np.concatenate(labels)
            weight, weighting = class_weighting(config.class_weight, y, len(dataset.class_names))
            solved = fit_linear_head(np.concatenate(views, axis=1), y, len(dataset.class_names), weight, config.seed,
                                     config.solver_c)
        names = " + ".join(f"{s.name} ({len(s)})" for s in pools)
        given = {"chosen_on": f"--solver-c {config.solver_c:g} (given: no cross-validation)"} if config.solver_c else {}
        return FitResult(None, solved.head, {}, selection={**solved.summary(), **given, "fit_on": names, **weighting},
                         fit_on=pools)

    def _keras_loop(self, context: TrainContext) -> FitResult:
        import keras

        from keras_transfer.backbones.heads import build_head_for
        from keras_transfer.backbones.network import build_classifier
        from keras_transfer.strategies.training import fit, one_hot, options_for, refit

        config, dataset = context.config, context.dataset
        n = len(dataset.class_names)
        features, indices = context.features.views(dataset.train, config.augment_views, config.flip)
        train_labels = np.tile(dataset.train.labels[indices], len(features))
        train = features.reshape(-1, *features.shape[2:]), one_hot(train_labels, n)
        features, indices = context.features(dataset.val)
        val_labels = dataset.val.labels[indices]
        val = features, one_hot(val_labels, n)
        keras.utils.set_random_seed(config.seed)  # after the features: building a deferred extractor draws numbers
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
        selection = {"solver": "keras", "epochs_chosen_on": f"{dataset.val.name} ({len(dataset.val)} images)"}
        return FitResult(build_classifier(context.features.model, head, config.resize), head, history,
                         selection=selection)
