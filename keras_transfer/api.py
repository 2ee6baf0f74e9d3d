"""The public Python API: train, evaluate, predict. The CLI is a thin layer over these."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from keras_transfer import log
from keras_transfer.backbones import get_backbone
from keras_transfer.config import TrainConfig
from keras_transfer.data.dataset import BUILTIN_DATASETS, Dataset, Split
from keras_transfer.errors import DatasetError, unknown_choice
from keras_transfer.evaluation.calibration import CALIBRATION_FILE
from keras_transfer.evaluation.metrics import classification_metrics
from keras_transfer.evaluation.predictions import PREDICTIONS_FILE, Predictions
from keras_transfer.evaluation.tta import predict_views
from keras_transfer.features import FeatureSource
from keras_transfer.features.keys import identity_hash
from keras_transfer.inference.predict import (collect_images, evaluate_outliers, predict,  # noqa: F401  (public API)
                                              predict_images)
from keras_transfer.paths import write_json
from keras_transfer.run import MODEL_FILE, Run, dataset_of, feature_source


def _checkpoints(config: TrainConfig, out: Path) -> Path:
    """Checkpoints of this exact config: re-running the same command resumes from them."""
    return out / "checkpoints" / identity_hash(dataclasses.asdict(config))


def uses_validation(config: TrainConfig) -> bool:
    """Whether the strategy makes choices (epochs, comparisons) on the validation split."""
    from keras_transfer.strategies.bottleneck import uses_solver

    return not (config.strategy == "bottleneck" and uses_solver(config))


def train(config: TrainConfig, out: str | Path) -> Run:
    """Trains a classifier and writes a run folder.

    Every choice (L2 strength, epochs, backbone, strategy) is made on training images or a
    validation split; the figures in ``metrics.json`` come from a split none of them saw
    (``evaluated_on``, ``held_out``).

    Args:
        config: What to train (dataset, backbone, strategy, head, ...).
        out: The run folder to write (created; files in it are replaced).

    Example:
        >>> run = train(TrainConfig(data="digits"), "runs/digits")  # doctest: +SKIP
        >>> run.read("metrics.json")["accuracy"] > 0.9  # doctest: +SKIP
        True
    """
    from keras_transfer.strategies import TrainContext, get_strategy

    start = time.perf_counter()
    config.validate()
    if config.data not in BUILTIN_DATASETS and Path(config.data).exists():  # stored absolute: the run never
        config = dataclasses.replace(config, data=str(Path(config.data).absolute()))  # depends on the cwd
    for name in ("labels", "exclude"):
        if getattr(config, name) and Path(getattr(config, name)).exists():
            config = dataclasses.replace(config, **{name: str(Path(getattr(config, name)).absolute())})
    dataset = _training_dataset(config)  # before the run folder exists: a bad dataset leaves none behind
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _cheap_audit(dataset, out)
    context = TrainContext(config, dataset, get_backbone(config.backbone), feature_source(config, out),
                           _checkpoints(config, out), lambda other: feature_source(other, out), started=start)
    fit_start = time.perf_counter()
    result = get_strategy(config.strategy).fit(context)
    fit_seconds = time.perf_counter() - fit_start
    config = result.config or config
    source = result.features or context.features
    if result.backbone_changed:
        source = feature_source(config, out, result.classifier.get_layer("features"))
    predictions, metrics, calibration, unknown = _evaluate_fit(result, dataset, source, config, out)
    _save_model(result, source, config, out, unknown)
    _save_run(out, config, {**dataset.summary(), "skipped_files": dataset.skipped,
                            "undecodable_files": context.features.failed}, result, metrics, predictions)
    write_json(out / CALIBRATION_FILE, calibration)
    write_json(out / "timing.json", {"total_seconds": time.perf_counter() - start, "fit_seconds": fit_seconds,
                                     "feature_seconds": context.features.seconds + (
                                         result.features.seconds if result.features else 0.0),
                                     "epochs": len(result.history.get("loss", []))})
    return Run(out)


def _training_dataset(config: TrainConfig) -> Dataset:
    """The dataset, with a selection split cut from train when the strategy makes choices on one."""
    dataset = dataset_of(config)
    if uses_validation(config):
        dataset = dataset.with_selection_split(config.val_fraction, config.seed)
    log.info(f"dataset {dataset.source}: {len(dataset.class_names)} classes, "
             + ", ".join(f"{name} {len(s)}" + (f" ({s.name})" if s.name != name else "")
                         for name, s in dataset.splits.items()))
    return dataset


def _cheap_audit(dataset: Dataset, out: Path) -> None:
    """Exact duplicates, leakage across splits, odd names and skipped files: ``audit.json``, one warning line."""
    from keras_transfer.audit import cheap_audit

    result = cheap_audit(dataset)
    write_json(out / "audit.json", result.as_dict())
    if result.findings:
        log.warn(f"{result.line()} (listed in {out / 'audit.json'}; `keras-transfer audit {dataset.source}` "
                 "also looks for near duplicates and label errors)")


def _evaluate_fit(result, dataset: Dataset, source: FeatureSource, config: TrainConfig, out: Path):
    """What the fit gives on the held-out split: (predictions, metrics, calibration, unknown scorer)."""
    predictions = _predict_split(dataset.eval_split, source, result.head, config)
    calibration = _calibrate(result, dataset, source, config, predictions)
    metrics = _held_out_metrics(predictions.with_temperature(calibration["temperature"]), dataset, result.selection)
    metrics["calibration"] = calibration
    fit_on = result.fit_on or [dataset.train]
    if config.baseline:
        metrics["baseline"] = _baseline(config, dataset, fit_on, out)
    unknown = _unknown_scorer(result, source, fit_on, config.seed)
    if unknown is not None:
        metrics["selection"]["unknown"] = {
            "method": f"k-NN cosine distance (k={unknown.k})", "threshold": unknown.threshold, "false_rejection": 0.05,
            "set_on": f"leave-one-out on {len(unknown.reference)} training images"}
    return predictions, metrics, calibration, unknown


def _held_out_metrics(predictions: Predictions, dataset: Dataset, selection: dict) -> dict:
    """The metrics of the held-out split, saying which images they came from and how choices were made."""
    metrics = classification_metrics(predictions.labels, predictions.probabilities, dataset.class_names)
    split = dataset.eval_split
    metrics.update(split=split.name, evaluated_on=split.name, held_out=True,
                   evaluated_images=f"{split.name}: {metrics['n']} images no choice was made on",
                   selection=selection)
    return metrics


def _calibrate(result, dataset: Dataset, source: FeatureSource, config: TrainConfig,
               held_out: Predictions) -> dict:
    """Temperature scaling of a Keras-trained head, fit on the selection split; a solved head keeps T = 1."""
    from keras_transfer.evaluation.calibration import calibration_record
    from keras_transfer.strategies.solver import LinearHead

    if config.refit:
        return calibration_record(held_out, why="--refit trained the head on the selection split too: no images "
                                                "are left to fit a temperature on")
    if isinstance(result.head, LinearHead):
        return calibration_record(held_out, why="its L2 strength was chosen by cross-validated log loss; a "
                                                "temperature fit on out-of-fold predictions made held-out ECE worse "
                                                "(benchmarks/calibration.py)")
    return calibration_record(held_out, _predict_split(dataset.val, source, result.head, config))


def _baseline(config: TrainConfig, dataset: Dataset, fit_on: list[Split], out: Path) -> dict:
    from keras_transfer.strategies.baseline import pixel_baseline

    return pixel_baseline(fit_on, dataset.eval_split, len(dataset.class_names), out / "features" / "pixels",
                          config.resize, config.seed)


def _unknown_scorer(result, source: FeatureSource, fit_on: list[Split], seed: int):
    """A solved head's unknown-image scorer: k-NN over the features of the images it learned from."""
    from keras_transfer.strategies.solver import LinearHead

    if not isinstance(result.head, LinearHead):
        return None
    from keras_transfer.inference.unknown import fit_unknown

    return fit_unknown(np.concatenate([source(split)[0] for split in fit_on]), seed=seed)


def _save_model(result, source: FeatureSource, config: TrainConfig, out: Path, unknown=None) -> None:
    """``model.keras``: saved by Keras, or (solver head) written from the cached template.

    What an earlier run into this folder left and the new model would contradict goes first:
    its exported files and its calibration temperature.
    """
    import shutil

    from keras_transfer.inference.predictor import HEAD_FILE, save_head
    from keras_transfer.inference.unknown import UNKNOWN_FILE

    shutil.rmtree(out / "export", ignore_errors=True)
    (out / CALIBRATION_FILE).unlink(missing_ok=True)

    if result.classifier is not None:
        result.classifier.save(out / MODEL_FILE)
        for stale in (HEAD_FILE, UNKNOWN_FILE):  # of an earlier default run into this folder
            (out / stale).unlink(missing_ok=True)
        return
    from keras_transfer.classifier_file import ensure_template, write_linear_classifier

    template = ensure_template(source.extractor, source.identity, config.resize, result.head.kernel.shape[0])
    write_linear_classifier(out / MODEL_FILE, template, result.head.kernel, result.head.bias)
    save_head(out / HEAD_FILE, result.head)  # what the Keras-free predictor reads
    if unknown is not None:
        unknown.save(out / UNKNOWN_FILE)


def _save_run(out: Path, config: TrainConfig, summary: dict, result, metrics: dict,
              predictions: Predictions) -> None:
    config.save(out / "config.json")
    for name, note in result.notes.items():
        write_json(out / name, note)
    write_json(out / "class_names.json", summary["classes"])
    write_json(out / "metrics.json", metrics)
    predictions.save(out / PREDICTIONS_FILE)
    write_json(out / "history.json", result.history)
    write_json(out / "dataset.json", summary)


def _probabilities(head):
    """features -> probabilities of a NumPy ``LinearHead`` or a Keras head model."""
    from keras_transfer.strategies.solver import LinearHead

    if isinstance(head, LinearHead):
        return head.predict
    return lambda features: np.asarray(head.predict(features, verbose=0, batch_size=256))


def _predict_split(split, source: FeatureSource, head, config: TrainConfig) -> Predictions:
    """The head's predictions of ``split``, averaged over the test-time views ``config`` asks for."""
    probabilities, indices = predict_views(_probabilities(head), source, split, config.tta_views, config.flip)
    return Predictions(split.name, np.array(split.ids(), dtype=str)[indices], indices,
                       split.labels[indices], probabilities)


def eval_predictions(run: str | Path | Run, data: str | Path | None = None) -> Predictions:
    """Probabilities of a run's held-out split (test, else val), or of another dataset's.

    Args:
        run: The run folder.
        data: Optional dataset whose class names match the run's; its val/test split is used.
    """
    run = run if isinstance(run, Run) else Run.open(run)
    config = run.config
    if data is not None:
        config = dataclasses.replace(config, data=str(data))
    dataset = dataset_of(config)
    if dataset.class_names != run.class_names:
        raise DatasetError(f"classes of {config.data} differ from the run's",
                           f"{run.class_names}", f"{dataset.class_names}")
    extractor, head = run.model.get_layer("features"), run.model.get_layer("head")
    return _predict_split(dataset.eval_split, feature_source(config, run.path, extractor), head, config)


def evaluate(run: str | Path | Run, data: str | Path | None = None) -> dict:
    """Metrics of a trained run on its held-out split (test, else val), or on another dataset.

    Args:
        run: The run folder.
        data: Optional dataset whose class names match the run's; its val/test split is used.
    """
    run = run if isinstance(run, Run) else Run.open(run)
    from keras_transfer.evaluation.calibration import calibration

    raw = eval_predictions(run, data)
    predictions = raw.with_temperature(run.temperature)
    metrics = classification_metrics(predictions.labels, predictions.probabilities, run.class_names)
    metrics["split"] = predictions.split
    metrics["calibration"] = {"temperature": run.temperature,
                              "ece_before": calibration(raw.labels, raw.probabilities).ece,
                              "ece_after": calibration(predictions.labels, predictions.probabilities).ece}
    return metrics


def split_features(run: str | Path | Run, split: str = "train") -> tuple[Split, np.ndarray, np.ndarray]:
    """Pooled backbone features of one split of a run's dataset (saved by train, else extracted).

    Returns:
        (the split, features (M, D), indices (M,) into the split of the images that decoded).
    """
    run = run if isinstance(run, Run) else Run.open(run)
    dataset = dataset_of(run.config)
    if split not in dataset.splits:
        raise unknown_choice("split", split, dataset.splits)
    source = feature_source(run.config, run.path, run.model.get_layer("features"))
    features, indices = source(dataset.splits[split])
    return dataset.splits[split], features, indices
