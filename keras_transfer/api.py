"""The public Python API: train, evaluate, predict. The CLI is a thin layer over these."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from keras_transfer import log
from keras_transfer.backbones import get_backbone
from keras_transfer.config import TUNED_STRATEGIES, TrainConfig
from keras_transfer.data.dataset import Dataset, Split, load_dataset
from keras_transfer.data.images import is_image_file, read_batch
from keras_transfer.errors import DatasetError, RunError, unknown_choice
from keras_transfer.evaluation.calibration import CALIBRATION_FILE, apply_temperature
from keras_transfer.evaluation.metrics import classification_metrics
from keras_transfer.evaluation.predictions import PREDICTIONS_FILE, Predictions
from keras_transfer.evaluation.tta import predict_views
from keras_transfer.features import Deferred, FeatureSource, RuntimeOptions
from keras_transfer.features.keys import identity_hash
from keras_transfer.run import MODEL_FILE, Run, write_json


def _load(config: TrainConfig) -> Dataset:
    return load_dataset(config.data, val_fraction=config.val_fraction, test_fraction=config.test_fraction,
                        seed=config.seed, max_per_class=config.max_per_class)


def _feature_source(config: TrainConfig, out: Path, extractor=None) -> FeatureSource:
    """Features of ``config``'s backbone; a given (trained) extractor is identified by its weights.

    Without ``extractor`` the backbone is a ``Deferred`` model: built (importing keras and
    torch) only if its features are not cached and its compiled engine does not exist yet.
    """
    spec = get_backbone(config.backbone)
    identity = {"backbone": spec.name, "weights": spec.weights_identity(config.weights),
                "size": config.size, "pooling": config.pooling, "preprocessing": spec.preprocessing.as_dict()}
    if extractor is not None and config.strategy in TUNED_STRATEGIES:
        from keras_transfer.model import weights_digest

        identity = {"backbone": f"{spec.name}+{config.strategy}", "weights": weights_digest(extractor),
                    "size": int(extractor.input_shape[1]), "pooling": config.pooling}
    if extractor is None:
        def build():
            from keras_transfer.model import build_extractor

            return build_extractor(spec, config.size, config.weights, config.pooling, config.offline)

        extractor = Deferred(build, config.size, None if config.pooling == "spatial" else (spec.feature_dim,))
    return FeatureSource(extractor, identity, out / "features", config.resize,
                         RuntimeOptions(config.runtime, config.precision), config.seed)


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
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dataset = _load(config)
    if uses_validation(config):
        dataset = dataset.with_selection_split(config.val_fraction, config.seed)
    log.info(f"dataset {dataset.source}: {len(dataset.class_names)} classes, "
             + ", ".join(f"{name} {len(s)}" + (f" ({s.name})" if s.name != name else "")
                         for name, s in dataset.splits.items()))
    context = TrainContext(config, dataset, get_backbone(config.backbone), _feature_source(config, out),
                           _checkpoints(config, out), lambda other: _feature_source(other, out), started=start)
    fit_start = time.perf_counter()
    result = get_strategy(config.strategy).fit(context)
    fit_seconds = time.perf_counter() - fit_start
    config = result.config or config
    source = result.features or context.features
    if result.backbone_changed:
        source = _feature_source(config, out, result.classifier.get_layer("features"))
    predictions = _predict_split(dataset.eval_split, source, result.head, config.tta_views)
    calibration = _calibrate(result, dataset, source, config, predictions)
    metrics = _held_out_metrics(predictions.with_temperature(calibration["temperature"]), dataset, result.selection)
    metrics["calibration"] = calibration
    if config.baseline:
        metrics["baseline"] = _baseline(config, dataset, out)
    _save_model(result, source, config, out)
    _save_run(out, config, {**dataset.summary(), "skipped_files": dataset.skipped,
                            "undecodable_files": context.features.failed}, result, metrics, predictions)
    write_json(out / CALIBRATION_FILE, calibration)
    write_json(out / "timing.json", {"total_seconds": time.perf_counter() - start, "fit_seconds": fit_seconds,
                                     "feature_seconds": context.features.seconds + (
                                         result.features.seconds if result.features else 0.0),
                                     "epochs": len(result.history.get("loss", []))})
    return Run(out)


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

    if isinstance(result.head, LinearHead):
        return calibration_record(held_out, why="its L2 strength was chosen by cross-validated log loss; a "
                                                "temperature fit on out-of-fold predictions made held-out ECE worse "
                                                "(benchmarks/calibration.py)")
    return calibration_record(held_out, _predict_split(dataset.val, source, result.head, config.tta_views))


def _baseline(config: TrainConfig, dataset: Dataset, out: Path) -> dict:
    from keras_transfer.evaluation.baseline import pixel_baseline

    fit_on = [dataset.train] + ([dataset.val] if "test" in dataset.splits else [])
    return pixel_baseline(fit_on, dataset.eval_split, len(dataset.class_names), out / "features" / "pixels",
                          config.resize, config.seed)


def _save_model(result, source: FeatureSource, config: TrainConfig, out: Path) -> None:
    """``model.keras``: saved by Keras, or (solver head) written from the cached template."""
    from keras_transfer.inference.predictor import HEAD_FILE, save_head
    from keras_transfer.inference.unknown import UNKNOWN_FILE

    if result.classifier is not None:
        result.classifier.save(out / MODEL_FILE)
        for stale in (HEAD_FILE, UNKNOWN_FILE):  # of an earlier default run into this folder
            (out / stale).unlink(missing_ok=True)
        return
    from keras_transfer.classifier_file import ensure_template, write_linear_classifier

    template = ensure_template(source.extractor, source.identity, config.resize, result.head.kernel.shape[0])
    write_linear_classifier(out / MODEL_FILE, template, result.head.kernel, result.head.bias)
    save_head(out / HEAD_FILE, result.head)  # what the Keras-free predictor reads
    if "unknown" in result.extras:
        result.extras["unknown"].save(out / UNKNOWN_FILE)


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


def _predict_split(split, source: FeatureSource, head, tta_views: int = 0) -> Predictions:
    probabilities, indices = predict_views(_probabilities(head), source, split, tta_views)
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
    dataset = _load(config)
    if dataset.class_names != run.class_names:
        raise DatasetError(f"classes of {config.data} differ from the run's",
                           f"{run.class_names}", f"{dataset.class_names}")
    extractor, head = run.model.get_layer("features"), run.model.get_layer("head")
    return _predict_split(dataset.eval_split, _feature_source(config, run.path, extractor), head, config.tta_views)


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
    dataset = _load(run.config)
    if split not in dataset.splits:
        raise unknown_choice("split", split, dataset.splits)
    source = _feature_source(run.config, run.path, run.model.get_layer("features"))
    features, indices = source(dataset.splits[split])
    return dataset.splits[split], features, indices


def collect_images(inputs: list[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Expands files and folders (recursively) into image paths; returns (paths, problems)."""
    paths, problems = [], []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.is_file() and is_image_file(p))
            paths += found
            if not found:
                problems.append((str(item), "folder holds no image files"))
        elif item.is_file():
            paths.append(item)
        else:
            problems.append((str(item), "no such file or folder"))
    return paths, problems


def predict(run: str | Path | Run, inputs: list[str | Path], top_k: int = 3, batch_size: int = 32) -> list[dict]:
    """Top-k predictions of a trained run for image files and folders.

    A run with a solved head on a frozen backbone predicts through the feature engine and a
    NumPy head (no keras or torch imported; see ``keras_transfer.inference``); other runs
    through their ``model.keras``.

    Returns:
        One dict per input image: ``{"path", "predictions": [{"label", "index", "probability"}...]}``;
        unreadable inputs get ``{"path", "error"}`` instead.
    """
    from keras_transfer.inference import Predictor

    run = run if isinstance(run, Run) else Run.open(run)
    predictor = Predictor.open(run)
    if predictor is None:  # a head or backbone trained by Keras: the saved end-to-end model
        size = int(run.model.get_layer("features").input_shape[1])
        return predict_images(run.model, inputs, run.class_names, size, run.config.resize, top_k, batch_size,
                              run.temperature)
    paths, problems = collect_images(inputs)
    probabilities, scores, failures = predictor.probabilities(paths)
    probabilities = apply_temperature(probabilities, run.temperature)
    results = [{"path": p, "error": reason} for p, reason in problems]
    for i, path in enumerate(paths):
        if i in failures:
            results.append({"path": str(path), "error": f"not a readable image ({failures[i]})"})
            continue
        results.append(_top_k(str(path), probabilities[i], run.class_names, top_k))
        if predictor.unknown is not None:
            results[-1].update(unknown=bool(scores[i] > predictor.unknown.threshold), unknown_score=float(scores[i]))
    return results


def evaluate_outliers(run: str | Path | Run, folder: str | Path) -> dict:
    """How well the run tells its held-out images from the images of ``folder`` (none of its classes).

    Returns:
        Per score (``knn``, ``max_softmax``): AUROC and the false-positive rate at 95% true
        positives, known = the held-out split, unknown = ``folder``; for ``knn`` also the share
        of each side its stored threshold flags.
    """
    from keras_transfer.inference import Predictor
    from keras_transfer.inference.unknown import outlier_report

    run = run if isinstance(run, Run) else Run.open(run)
    predictor = Predictor.open(run)
    if predictor is None or predictor.unknown is None:
        raise RunError(f"run {run.path} has no unknown-image scorer", "a run of the default bottleneck head",
                       hint="train it again with the default --strategy bottleneck --head linear")
    split = _load(run.config).eval_split
    known, indices = predictor.source(split)
    paths, problems = collect_images([folder])
    if not paths:
        raise DatasetError(f"no images in {folder}", "a folder of image files", "; ".join(r for _, r in problems))
    split_outliers = Split("outliers", paths, np.zeros(len(paths), np.int64))
    outliers, _ = predictor.source.view(split_outliers, 0)  # shared cache only: nothing written into the run
    report = outlier_report(known, predictor.head.predict(known), outliers, predictor.head.predict(outliers),
                            predictor.unknown)
    return {**report, "known": f"{split.name} ({len(indices)})", "outliers": f"{folder} ({len(outliers)})"}


def predict_images(model, inputs: list[str | Path], class_names: list[str], size: int,
                   resize_mode: str = "stretch", top_k: int = 3, batch_size: int = 32,
                   temperature: float = 1.0) -> list[dict]:
    """Top-k predictions of ``model`` (uint8 (size, size, 3) batch -> class probabilities).

    Args:
        model: A Keras model taking uint8 RGB images resized to ``size``.
        inputs: Image files and folders (searched recursively).
        class_names: The name of each output class.
        size: Side the images are resized to (``resize_mode``: stretch, pad or crop).
        top_k: Classes listed per image.
        batch_size: Images per inference call.
        temperature: Calibration temperature applied to the model's probabilities.
    """
    paths, problems = collect_images(inputs)
    results = [{"path": p, "error": reason} for p, reason in problems]
    for start in log.progress(range(0, len(paths), batch_size), desc="predict", unit="batch"):
        ok, batch, failures = read_batch(paths[start:start + batch_size], size, resize_mode)
        results += [{"path": path, "error": reason} for path, reason in failures]
        if batch:
            probabilities = apply_temperature(np.asarray(model.predict_on_batch(np.stack(batch))), temperature)
            results += [_top_k(str(p), row, class_names, top_k) for p, row in zip(ok, np.asarray(probabilities))]
    return results


def _top_k(path: str, probabilities: np.ndarray, names: list[str], k: int) -> dict:
    order = np.argsort(-probabilities)[:k]
    return {"path": path, "predictions": [{"label": names[i], "index": int(i), "probability": float(probabilities[i])}
                                          for i in order]}
