"""``train --unlabelled FOLDER``: self-training of the solved head, measured and never silent.

The unlabelled images (those whose bytes are not already in the dataset) get the same cached
views as the training images; ``strategies.pseudo.self_train`` decides by cross-validation
inside the labelled training images whether pseudo-labels help and at which threshold. The
held-out split's figures with and without them are computed here for the record only (they
never choose anything) and land in ``metrics.json`` under ``selection.pseudo_labels``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from keras_transfer.base import log
from keras_transfer.base.errors import ConfigError
from keras_transfer.data.dataset import Split
from keras_transfer.features import view_numbers
from keras_transfer.features.keys import content_keys
from keras_transfer.inference.head import LinearHead
from keras_transfer.run.model import RunModel
from keras_transfer.run.queue import unlabelled_images


def _new_images(folder: str, dataset) -> tuple[list[Path], int]:
    """The images of ``folder`` whose bytes are in no split of ``dataset`` (held-out ones included), and
    how many were left out as already there."""
    paths, _ = unlabelled_images(folder)
    known = {key for split in dataset.splits.values() for key in content_keys(split) if key is not None}
    keys = content_keys(Split("unlabelled", paths, np.zeros(len(paths), np.int64)))
    fresh = [p for p, k in zip(paths, keys) if k is None or k not in known]
    return fresh, len(paths) - len(fresh)


def _held_out_accuracy(head: LinearHead, source, dataset, views: tuple[int, ...]) -> float:
    predictions = RunModel(dataset.class_names, source, head, views).predict_split(dataset.eval_split)
    return float((predictions.probabilities.argmax(1) == predictions.labels).mean())


def with_pseudo_labels(result, context):
    """``result`` (a strategy's ``FitResult``) with the head self-training chose, and its record in
    ``selection["pseudo_labels"]``."""
    from keras_transfer.strategies.bottleneck import class_weighting
    from keras_transfer.strategies.pseudo import self_train

    config, dataset = result.config or context.config, context.dataset
    if dataset.multi_label or not isinstance(result.head, LinearHead):
        raise ConfigError("--unlabelled trains the solved linear head of single-label data with pseudo-labels",
                          "the default --strategy bottleneck, --head linear, one label per image",
                          f"--strategy {config.strategy}" + (", several labels per image" if dataset.multi_label
                                                             else ""))
    source = result.features or context.features
    numbers = view_numbers(config.augment_views, config.flip)
    fresh, already = _new_images(config.unlabelled, dataset)
    if already:
        log.info(f"--unlabelled: {already} image(s) of {config.unlabelled} are already in the dataset: left out")
    pool = Split("unlabelled", fresh, np.zeros(len(fresh), np.int64))
    parts = [source.view(pool, number, desc="features unlabelled") for number in numbers]
    read = parts[0][1]
    unlabelled = np.stack([features for features, _ in parts]) if len(read) else np.zeros((len(numbers), 0, 1))
    views, labels = [], []
    for split in result.fit_on or [dataset.train]:
        features, indices = source.views(split, config.augment_views, config.flip)
        views.append(features)
        labels.append(split.labels[indices])
    y = np.concatenate(labels)
    weight, _ = class_weighting(config.class_weight, y, len(dataset.class_names))
    trained = self_train(np.concatenate(views, axis=1), y, unlabelled, len(dataset.class_names), weight, config.seed)
    record = trained.summary()
    record["unreadable"] = len(fresh) - len(read)
    record["already_in_dataset"] = already
    if trained.with_pseudo is not None:
        view_tuple = tuple(view_numbers(config.tta_views, config.flip))
        record["held_out_accuracy"] = {
            "without": _held_out_accuracy(trained.plain.head, source, dataset, view_tuple),
            "with": _held_out_accuracy(trained.with_pseudo, source, dataset, view_tuple),
            "split": f"{dataset.eval_split.name} ({len(dataset.eval_split)} images)",
            "note": "measured after the choice, never used to make it"}
    log.info(f"--unlabelled: {record['used']} pseudo-label(s) used" + (
        f" at threshold {trained.threshold:g}" if trained.threshold is not None else "") + f" ({record['why']})")
    return dataclasses.replace(result, head=trained.head,
                               selection={**result.selection, "pseudo_labels": record})
