"""Predicting image files with a trained run: ``predict`` (and the unknown-image check).

Both ask the run's ``RunModel`` (the one inference rule): a default run answers through the
feature engine and a NumPy head, importing neither keras nor torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_transfer.base.errors import ConfigError, DatasetError, RunError
from keras_transfer.config import dataset_of
from keras_transfer.data.dataset import Split
from keras_transfer.data.layout import collect_images
from keras_transfer.inference.unknown import outlier_report
from keras_transfer.run.folder import Run
from keras_transfer.run.model import RunModel


def check_top_k(top_k: int) -> None:
    """The check of ``top_k`` that ``predict`` and the CLI's ``--top-k`` share."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ConfigError("invalid --top-k", "a whole number >= 1 (more than the classes lists them all)", str(top_k))


def predict(run: str | Path | Run | RunModel, inputs: list[str | Path], top_k: int = 3, executor=None) -> list[dict]:
    """Top-k predictions of a trained run for image files and folders.

    ``executor`` (``"local"`` when None, ``"ray"``, or an executor object such as
    ``RayExecutor(address)``) extracts the features.

    Returns:
        One dict per input image: ``{"path", "predictions": [{"label", "index", "probability"}...]}``
        (and ``unknown``, ``unknown_score`` where the run has an unknown-image scorer);
        unreadable inputs get ``{"path", "error"}`` instead.

    Example:
        >>> predict("runs/ants", ["bee.jpg"], top_k=1)[0]["predictions"][0]["label"]  # doctest: +SKIP
        'bees'
    """
    check_top_k(top_k)
    model = run if isinstance(run, RunModel) else RunModel.open(run, executor)
    paths, problems = collect_images(inputs)
    answer, failures = model.predict_files(paths)
    results = [{"path": p, "error": reason} for p, reason in problems]
    for i, path in enumerate(paths):
        if i in failures:
            results.append({"path": str(path), "error": f"not a readable image ({failures[i]})"})
        else:
            results.append({"path": str(path), **model.top_k(answer.probabilities[i], answer.unknown_scores[i], top_k)})
    return results


def evaluate_outliers(run: str | Path | Run, folder: str | Path) -> dict:
    """How well the run tells its held-out images from the images of ``folder`` (none of its classes).

    Returns:
        Per score (``knn``, ``energy``, ``max_softmax``): AUROC and the false-positive rate at 95% true
        positives, known = the held-out split, unknown = ``folder``; for ``knn`` also the share
        of each side its stored threshold flags.
    """
    model = RunModel.open(run)
    if model.unknown is None or not model.solved:
        raise RunError(f"run {model.run.path} has no unknown-image scorer", "a run of the default bottleneck head",
                       hint="train it again with the default --strategy bottleneck --head linear")
    split = dataset_of(model.run.config).eval_split
    known, indices = model.source(split)
    paths, problems = collect_images([folder])
    if not paths:
        raise DatasetError(f"no images in {folder}", "a folder of image files", "; ".join(r for _, r in problems))
    split_outliers = Split("outliers", paths, np.zeros(len(paths), np.int64))
    outliers, _ = model.source.view(split_outliers, 0)  # shared cache only: nothing written into the run
    report = outlier_report(known, outliers, model.head, model.unknown)
    return {**report, "known": f"{split.name} ({len(indices)})", "outliers": f"{folder} ({len(outliers)})"}
