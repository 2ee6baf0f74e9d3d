"""``train``: a dataset and a ``TrainConfig`` in, a complete run folder out (the CLI's ``train``)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from keras_transfer.base import log
from keras_transfer.backbones import get_backbone
from keras_transfer.base.errors import ConfigError
from keras_transfer.base.paths import write_json
from keras_transfer.config import TrainConfig, dataset_of, feature_source
from keras_transfer.data.dataset import BUILTIN_DATASETS, Dataset, Split
from keras_transfer.evaluation.metrics import classification_metrics
from keras_transfer.evaluation.multilabel import multilabel_metrics
from keras_transfer.evaluation.predictions import Predictions
from keras_transfer.features import FeatureSource, view_numbers
from keras_transfer.features.keys import identity_hash
from keras_transfer.features.runtime import resolve_precision
from keras_transfer.inference.head import LinearHead
from keras_transfer.run.folder import Files, Run
from keras_transfer.run.model import RunModel
from keras_transfer.run.model_card import write_model_card
from keras_transfer.run.writing import RunWriting


def _checkpoints(config: TrainConfig, out: Path) -> Path:
    """Checkpoints of this exact config: re-running the same command resumes from them."""
    return out / Files.CHECKPOINTS / identity_hash(dataclasses.asdict(config))


def uses_validation(config: TrainConfig) -> bool:
    """Whether the strategy makes choices (epochs, comparisons) on the validation split."""
    from keras_transfer.strategies.bottleneck import uses_solver

    return not (config.strategy == "bottleneck" and uses_solver(config))


def train(config: TrainConfig, out: str | Path, dataset: Dataset | None = None) -> Run:
    """Trains a classifier and writes a run folder.

    Every choice (L2 strength, epochs, backbone, strategy) is made on training images or a
    validation split; the figures in ``metrics.json`` come from a split none of them saw
    (``evaluated_on``, ``held_out``).

    Args:
        config: What to train (dataset, backbone, strategy, head, ...).
        out: The run folder to write (created; files in it are replaced).
        dataset: What ``dataset_of(config)`` gives, already loaded (the studio passes the folder it
            holds with its fixes applied); default: loaded from ``config``.

    Example:
        >>> run = train(TrainConfig(data="digits"), "runs/digits")  # doctest: +SKIP
        >>> run.read(Files.METRICS)["accuracy"] > 0.9  # doctest: +SKIP
        True
    """
    from keras_transfer.strategies import TrainContext, get_strategy

    start = time.perf_counter()
    config = dataclasses.replace(config.validate(), precision=resolve_precision(config.precision, config.runtime))
    if config.data not in BUILTIN_DATASETS and Path(config.data).exists():  # stored absolute: the run never
        config = dataclasses.replace(config, data=str(Path(config.data).absolute()))  # depends on the cwd
    for name in ("labels", "exclude", "unlabelled", "corrections"):
        if getattr(config, name) and Path(getattr(config, name)).exists():
            config = dataclasses.replace(config, **{name: str(Path(getattr(config, name)).absolute())})
    dataset = _training_dataset(config, dataset)  # before the run folder exists: a bad dataset leaves none behind
    out = Path(out)
    with RunWriting(out) as writing:  # complete, or removed (an interruption, an error)
        audit = _cheap_audit(dataset, out)
        context = TrainContext(config, dataset, get_backbone(config.backbone), feature_source(config, out),
                               _checkpoints(config, out), lambda other: feature_source(other, out), started=start)
        fit_start = time.perf_counter()
        result = get_strategy(config.strategy).fit(context)
        if config.unlabelled:  # self-training, kept only where cross-validation inside train says it helps
            from keras_transfer.run.pseudo_labels import with_pseudo_labels

            result = with_pseudo_labels(result, context)
        fit_seconds = time.perf_counter() - fit_start
        config = result.config or config
        source = result.features or context.features
        if result.backbone_changed:
            source = feature_source(config, out, result.classifier.get_layer("features"))
        predictions, metrics, calibration, unknown = _evaluate_fit(result, dataset, source, config, out)
        writing.commit()  # everything is computed: now the files, config.json last
        write_json(out / Files.AUDIT, audit)
        _save_model(result, source, config, out, unknown)
        _save_run(out, config, {**dataset.summary(), "skipped_files": dataset.skipped,
                                "undecodable_files": context.features.failed}, result, metrics, predictions)
        write_json(out / Files.CALIBRATION, calibration)
        write_json(out / Files.TIMING, {"total_seconds": time.perf_counter() - start, "fit_seconds": fit_seconds,
                                         "feature_seconds": context.features.seconds + (
                                             result.features.seconds if result.features else 0.0),
                                         "epochs": len(result.history.get("loss", []))})
        config.save(out / Files.CONFIG)  # last: Run.open needs it, so the run is complete only now
        write_model_card(out)  # from the files just written
    return Run(out)


def _training_dataset(config: TrainConfig, dataset: Dataset | None = None) -> Dataset:
    """The dataset, with a selection split cut from train when the strategy makes choices on one."""
    dataset = dataset_of(config) if dataset is None else dataset
    if dataset.multi_label and not (config.strategy == "bottleneck" and config.solved):
        raise ConfigError(f"{config.data} has several labels per image, which the solved head learns "
                          "(one sigmoid per label)", "--strategy bottleneck with the linear head (the default)",
                          f"--strategy {config.strategy}" + (f" --head {config.head}" if config.head != "linear" else ""),
                          hint="drop --strategy / --head / --solver keras for this dataset")
    if uses_validation(config):
        dataset = dataset.with_selection_split(config.val_fraction, config.seed)
    log.info(f"dataset {dataset.source}: {len(dataset.class_names)} classes, "
             + ", ".join(f"{name} {len(s)}" + (f" ({s.name})" if s.name != name else "")
                         for name, s in dataset.splits.items()))
    return dataset


def _cheap_audit(dataset: Dataset, out: Path) -> dict:
    """Exact duplicates, leakage across splits, odd names and skipped files: ``audit.json``'s content, one warning line."""
    from keras_transfer.audit import cheap_audit

    result = cheap_audit(dataset)
    if result.findings:
        log.warn(f"{result.line()} (listed in {out / Files.AUDIT}; `keras-transfer audit {dataset.source}` "
                 "also looks for near duplicates and label errors)")
    return result.as_dict()


def _evaluate_fit(result, dataset: Dataset, source: FeatureSource, config: TrainConfig, out: Path):
    """What the fit gives on the held-out split: (predictions, metrics, calibration, unknown scorer)."""
    model = RunModel(dataset.class_names, source, result.head, tuple(view_numbers(config.tta_views, config.flip)))
    predictions = model.predict_split(dataset.eval_split)  # the run's own rule, before it is saved
    calibration = _calibrate(model, result, dataset, config, predictions)
    metrics = _held_out_metrics(predictions.with_temperature(calibration["temperature"]), dataset, result.selection,
                                result.head)
    metrics["calibration"] = calibration
    fit_on = result.fit_on or [dataset.train]
    if config.baseline and not dataset.multi_label:  # the pixel baseline is a softmax over classes
        metrics["baseline"] = _baseline(config, dataset, fit_on, out)
    unknown = _unknown_scorer(result, source, fit_on, config.seed)
    if unknown is not None:
        from keras_transfer.inference.unknown import FALSE_REJECTION, METHOD

        held_out = unknown.scores(source(dataset.eval_split)[0]) > unknown.threshold  # reported, never used to choose
        metrics["selection"]["unknown"] = {
            "method": f"k-NN cosine distance (k={unknown.k})", "threshold": unknown.threshold,
            "false_rejection": FALSE_REJECTION, "promised_false_rejection": FALSE_REJECTION,
            "set_on": f"{METHOD} on {len(unknown.reference)} training images",
            "measured_false_rejection": {"rate": float(held_out.mean()) if len(held_out) else None,
                                         "rejected": int(held_out.sum()), "images": len(held_out),
                                         "split": dataset.eval_split.name,
                                         "note": "held-out images of the known classes flagged unknown; measured "
                                                 "after the threshold was set, never used to set it"}}
    return predictions, metrics, calibration, unknown


def _held_out_metrics(predictions: Predictions, dataset: Dataset, selection: dict, head=None) -> dict:
    """The metrics of the held-out split, saying which images they came from and how choices were made."""
    if dataset.multi_label:
        metrics = multilabel_metrics(predictions.labels, predictions.probabilities, dataset.class_names,
                                     head.thresholds)
    else:
        metrics = classification_metrics(predictions.labels, predictions.probabilities, dataset.class_names)
    split = dataset.eval_split
    metrics.update(split=split.name, evaluated_on=split.name, held_out=True,
                   evaluated_images=f"{split.name}: {metrics['n']} images no choice was made on",
                   selection=selection)
    return metrics


def _calibrate(model: RunModel, result, dataset: Dataset, config: TrainConfig, held_out: Predictions) -> dict:
    """Temperature scaling of a Keras-trained head, fit on the selection split; a solved head keeps T = 1."""
    from keras_transfer.evaluation.calibration import calibration_record

    if dataset.multi_label:
        return {"method": "none", "temperature": 1.0, "why": "several labels per image: one sigmoid per label, "
                "L2 strength by cross-validated log loss, each label's threshold chosen on out-of-fold images"}
    if config.refit:
        return calibration_record(held_out, why="--refit trained the head on the selection split too: no images "
                                                "are left to fit a temperature on")
    if isinstance(result.head, LinearHead):
        return calibration_record(held_out, why="its L2 strength was chosen by cross-validated log loss; a "
                                                "temperature fit on out-of-fold predictions made held-out ECE worse "
                                                "(benchmarks/calibration.py)")
    return calibration_record(held_out, model.predict_split(dataset.val))


def _baseline(config: TrainConfig, dataset: Dataset, fit_on: list[Split], out: Path) -> dict:
    from keras_transfer.strategies.baseline import pixel_baseline

    return pixel_baseline(fit_on, dataset.eval_split, len(dataset.class_names), out / Files.FEATURES / "pixels",
                          config.resize, config.seed)


def _unknown_scorer(result, source: FeatureSource, fit_on: list[Split], seed: int):
    """A solved head's unknown-image scorer: k-NN over the features of the images it learned from."""
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

    shutil.rmtree(out / Files.EXPORT, ignore_errors=True)
    (out / Files.CALIBRATION).unlink(missing_ok=True)

    if result.classifier is not None:
        result.classifier.save(out / Files.MODEL)
        (out / Files.HEAD).unlink(missing_ok=True)  # of an earlier default run into this folder
    else:
        from keras_transfer.run.classifier_file import ensure_template, write_linear_classifier

        template = ensure_template(source.extractor, source.identity, config.resize, result.head.kernel.shape[0])
        write_linear_classifier(out / Files.MODEL, template, result.head.kernel, result.head.bias)
        result.head.save(out / Files.HEAD)  # what the Keras-free RunModel reads
    if unknown is not None:
        unknown.save(out / Files.UNKNOWN)
    else:
        (out / Files.UNKNOWN).unlink(missing_ok=True)


def _save_run(out: Path, config: TrainConfig, summary: dict, result, metrics: dict,
              predictions: Predictions) -> None:
    for name, note in result.notes.items():
        write_json(out / name, note)
    write_json(out / Files.CLASSES, summary["classes"])
    write_json(out / Files.METRICS, metrics)
    predictions.save(out / Files.PREDICTIONS)
    write_json(out / Files.HISTORY, result.history)
    write_json(out / Files.DATASET, summary)
