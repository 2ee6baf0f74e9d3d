"""Predicting image files with a trained run: ``predict`` (and the unknown-image check).

A default run predicts through its ``Predictor`` (feature engine + NumPy head, no keras or
torch imported); other runs through their ``model.keras``. Both apply the run's calibration
temperature. ``keras_transfer.api`` re-exports these as the public API.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_transfer import log
from keras_transfer.data.dataset import Split
from keras_transfer.data.images import is_image_file, read_batch
from keras_transfer.data.layout import walk_files
from keras_transfer.errors import DatasetError, RunError
from keras_transfer.evaluation.calibration import apply_temperature
from keras_transfer.inference.predictor import Predictor
from keras_transfer.inference.unknown import outlier_report
from keras_transfer.run import Run, dataset_of


def collect_images(inputs: list[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Expands files and folders (recursively) into image paths; returns (paths, problems)."""
    paths, problems = [], []
    for item in map(Path, inputs):
        if item.is_dir():
            files, trouble = walk_files(item)  # follows links, never round a loop
            found = [p for p in files if is_image_file(p)]
            paths += found
            problems += trouble
            if not found:
                problems.append((str(item), "folder holds no image files"))
        elif item.is_file():
            paths.append(item)
        else:
            problems.append((str(item), "no such file or folder"))
    return paths, problems


def predict(run: str | Path | Run, inputs: list[str | Path], top_k: int = 3, batch_size: int = 32,
            executor=None) -> list[dict]:
    """Top-k predictions of a trained run for image files and folders.

    A run with a solved head on a frozen backbone predicts through the feature engine and a
    NumPy head (no keras or torch imported; see ``keras_transfer.inference``); other runs
    through their ``model.keras``. ``executor`` (``"local"`` when None, ``"ray"``, or an executor
    object such as ``RayExecutor(address)``) extracts the features of a default run.

    Returns:
        One dict per input image: ``{"path", "predictions": [{"label", "index", "probability"}...]}``;
        unreadable inputs get ``{"path", "error"}`` instead.
    """

    run = run if isinstance(run, Run) else Run.open(run)
    predictor = Predictor.open(run, executor)
    if predictor is None:  # a head or backbone trained by Keras: the saved end-to-end model
        if executor not in (None, "local"):
            log.warn("this run predicts through its model.keras, in this process: the executor is not used")
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
        Per score (``knn``, ``energy``, ``max_softmax``): AUROC and the false-positive rate at 95% true
        positives, known = the held-out split, unknown = ``folder``; for ``knn`` also the share
        of each side its stored threshold flags.
    """

    run = run if isinstance(run, Run) else Run.open(run)
    predictor = Predictor.open(run)
    if predictor is None or predictor.unknown is None:
        raise RunError(f"run {run.path} has no unknown-image scorer", "a run of the default bottleneck head",
                       hint="train it again with the default --strategy bottleneck --head linear")
    split = dataset_of(run.config).eval_split
    known, indices = predictor.source(split)
    paths, problems = collect_images([folder])
    if not paths:
        raise DatasetError(f"no images in {folder}", "a folder of image files", "; ".join(r for _, r in problems))
    split_outliers = Split("outliers", paths, np.zeros(len(paths), np.int64))
    outliers, _ = predictor.source.view(split_outliers, 0)  # shared cache only: nothing written into the run
    report = outlier_report(known, outliers, predictor.head, predictor.unknown)
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
