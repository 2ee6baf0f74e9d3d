"""What a ``TrainConfig`` reads: its dataset (split as at training) and its backbone's features."""

from __future__ import annotations

from pathlib import Path

from keras_transfer.backbones import get_backbone
from keras_transfer.config.train_config import TUNED_STRATEGIES, TrainConfig
from keras_transfer.data.dataset import Dataset
from keras_transfer.data.load import load_dataset
from keras_transfer.data.corrections import apply_corrections
from keras_transfer.data.exclude import exclude_files
from keras_transfer.features import Deferred, FeatureSource, RuntimeOptions, make_executor


def dataset_of(config: TrainConfig) -> Dataset:
    """The dataset ``config`` trains on, split as at training (same seed and fractions)."""
    dataset = load_dataset(config.data, val_fraction=config.val_fraction, test_fraction=config.test_fraction,
                           seed=config.seed, max_per_class=config.max_per_class, labels=config.labels, labels_from_name=config.labels_from_name,
                           multi_label=config.multi_label,
                           splits=config.splits)
    if config.exclude:
        dataset = exclude_files(dataset, config.exclude)
    if config.corrections:
        dataset = apply_corrections(dataset, config.corrections, config.data, config.val_fraction, config.seed)
    return dataset


def feature_source(config: TrainConfig, out: Path, extractor=None, executor=None) -> FeatureSource:
    """Features of ``config``'s backbone; a given (trained) extractor is identified by its weights.

    ``executor`` (``"local"``, ``"ray"`` or an executor object) extracts the cache misses; None
    takes ``config.executor`` at ``config.ray_address``. It is no part of the feature identity.

    Without ``extractor`` the backbone is a ``Deferred`` model: built (importing keras and
    torch) only if its features are not cached and its compiled engine does not exist yet.
    """
    spec = get_backbone(config.backbone)
    stages = config.pool_stages
    preprocessing = [part.preprocessing.as_dict() for part in spec.parts]
    identity = {"backbone": spec.name, "weights": spec.weights_identity(config.weights), "size": config.size,
                "pooling": config.pooling, "preprocessing": preprocessing if spec.members else preprocessing[0],
                **({"stages": stages} if stages > 1 else {})}  # one stage: the keys of earlier releases
    if extractor is not None and config.strategy in TUNED_STRATEGIES:
        from keras_transfer.backbones.network import weights_digest

        identity = {"backbone": f"{spec.name}+{config.strategy}", "weights": weights_digest(extractor),
                    "size": int(extractor.input_shape[1]), "pooling": config.pooling}
    if extractor is None:
        def build():
            from keras_transfer.backbones.network import build_extractor

            return build_extractor(spec, config.size, config.weights, config.pooling, config.offline, stages)

        extractor = Deferred(build, config.size, None if config.pooling == "spatial" else (spec.pooled_dim(stages),))
    if executor is None:
        executor = make_executor(config.executor, config.ray_address)
    return FeatureSource(extractor, identity, out / "features", config.resize, runtime_options(config), config.seed,
                         executor=executor)


def runtime_options(config: TrainConfig) -> RuntimeOptions:
    """The runtime and the resolved precision of ``config``; int8 calibrates on a seeded subset of its
    training images (loaded only if the int8 model or a feature is not cached yet)."""
    options = RuntimeOptions(config.runtime, config.precision).resolved()
    if options.precision != "int8":
        return options
    from dataclasses import replace

    from keras_transfer.features.quantize import Calibration

    return replace(options, calibration=Calibration(lambda: dataset_of(config).train, config.resize, config.seed))
