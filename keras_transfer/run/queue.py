"""``queue``: which unlabelled images of a folder to label next for a trained run.

The run answers through its one rule (``RunModel``): the unlabelled images' views go through
its engine and the shared feature cache, its head and calibration give the probabilities; the
images it already learnt from (every split of its dataset, read as at training) come from the
run's saved features. ``strategies.active.rank`` orders the rest.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keras_transfer.base import log
from keras_transfer.base.errors import ConfigError, DatasetError, RunError
from keras_transfer.config import dataset_of
from keras_transfer.data.dataset import Split
from keras_transfer.data.layout import collect_images
from keras_transfer.data.skipped import summarise
from keras_transfer.features.keys import content_keys
from keras_transfer.run.model import RunModel
from keras_transfer.strategies.active import DEPTH, STRATEGIES, rank

COLUMNS = ("rank", "path", "suggested", "probability", "uncertainty", "reason")


@dataclass
class Queue:
    """A labelling order: ``rows`` (one dict per image, ``COLUMNS``), ``skipped`` ({path, reason})."""

    strategy: str
    rows: list[dict]
    skipped: list[dict] = field(default_factory=list)
    labelled: int = 0
    seconds: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"strategy": self.strategy, "queued": len(self.rows), "labelled_images": self.labelled,
                "queue": self.rows, "skipped": self.skipped, "seconds": self.seconds}

    def save(self, path: str | Path) -> Path:
        """Writes the rows to ``path``: ``.json`` (the rows and the skipped images) or ``.csv`` (the rows)."""
        from keras_transfer.base.csv_cells import csv_text
        from keras_transfer.base.paths import atomic_file, strict_json

        path = check_out(path)
        text = (strict_json(self.as_dict()) if path.suffix.lower() == ".json"
                else csv_text(list(COLUMNS), ([row[c] for c in COLUMNS] for row in self.rows)))
        try:
            atomic_file(path, lambda tmp: Path(tmp).write_text(text, errors="surrogateescape"))
        except OSError as error:
            raise ConfigError(f"cannot write the queue to {path}", "a writable file path", str(error)) from error
        return path


def check_out(path: str | Path) -> Path:
    """``path`` if a queue can be written there (``.csv`` or ``.json``), else a ``ConfigError``."""
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".json"):
        raise ConfigError(f"cannot write a queue to {path}", "a file name ending in .csv or .json",
                          repr(path.suffix or path.name))
    return path


def unlabelled_images(folder: str | Path) -> tuple[list[Path], list[dict]]:
    """The image files under ``folder`` and the entries left out ({path, reason}); a clear error when none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"unlabelled folder not found: {folder}", "a folder of image files",
                           "a file" if folder.exists() else "nothing at that path")
    paths, problems = collect_images([folder])
    if not paths:
        raise DatasetError(f"no images in {folder}", "a folder holding image files (jpg, png, ...)",
                           "; ".join(reason for _, reason in problems) or "an empty folder")
    return paths, [{"path": p, "reason": r} for p, r in problems]


def labelled_contents(model: RunModel) -> dict[str, str]:
    """Content hash -> path of every image of the run's dataset (all splits, as at training)."""
    dataset = dataset_of(model.run.config)
    found = {}
    for split in dataset.splits.values():
        for key, name in zip(content_keys(split), split.ids()):
            if key is not None:
                found.setdefault(key, name)
    return found


def labelled_features(model: RunModel) -> np.ndarray:
    """View-0 features (L, D) of every image of the run's dataset (the run's saved split features)."""
    dataset = dataset_of(model.run.config)
    return np.concatenate([model.source(split)[0] for split in dataset.splits.values()])


def pool_answer(model: RunModel, paths: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, str]]:
    """(calibrated probabilities (M, C), view-0 features (M, D), indices (M,) of the images read,
    {index: reason} of those that were not), through the run's views, engine and cache."""
    split = Split("unlabelled", list(paths), np.zeros(len(paths), np.int64))
    views, indices, failed = [], None, {}
    for number in model.views:
        features, read = model.source.view(split, number, desc="features unlabelled")
        views.append(features)
        indices = read
    reasons = dict(model.source.failed)
    ids = split.ids()
    failed = {int(i): reasons.get(ids[i], "cannot decode the image") for i in sorted(set(range(len(paths))) - set(indices))}
    answer = model.answer(np.stack(views), with_features=True)
    return answer.probabilities, answer.features, np.asarray(indices), failed


def build_queue(run, folder: str | Path, strategy: str = "mixed", limit: int | None = None, seed: int = 0,
                executor=None) -> Queue:
    """Orders the images of ``folder`` for labelling, for the classes of a trained ``run``.

    Images whose bytes are already in the run's data, files that cannot be decoded, and near
    duplicates of a labelled or queued image are left out, each listed in ``skipped``.

    Args:
        run: A run folder, ``Run`` or ``RunModel``.
        folder: The unlabelled images (searched recursively).
        strategy: ``mixed`` | ``uncertainty`` | ``diversity`` | ``random``.
        limit: Rows kept (None: all).
        seed: Seed of ``random``.
        executor: Where the features are extracted (None: local).

    Example:
        >>> queue = build_queue("runs/flowers", "new_photos/", limit=20)  # doctest: +SKIP
        >>> queue.rows[0]["suggested"], queue.rows[0]["reason"]  # doctest: +SKIP
        ('rose', 'uncertain (margin 0.041 between its two likeliest classes) and unlike ...')
    """
    if strategy not in STRATEGIES:
        from keras_transfer.base.errors import unknown_choice

        raise unknown_choice("strategy", strategy, STRATEGIES)
    if limit is not None and (isinstance(limit, bool) or limit < 1):
        raise ConfigError("invalid --limit", "a whole number >= 1", repr(limit))
    start = time.perf_counter()
    paths, skipped = unlabelled_images(folder)
    model = RunModel.open(run, executor)
    if model.multi_label:
        raise RunError(f"run {model.run.path} gives several labels per image", "a run with one label per image",
                       hint="the labelling queue ranks single-label runs")
    known = labelled_contents(model)
    keys = content_keys(Split("unlabelled", paths, np.zeros(len(paths), np.int64)))
    fresh = []
    for path, key in zip(paths, keys):
        if key is not None and key in known:
            skipped.append({"path": str(path), "reason": f"already labelled in the run's data ({known[key]})"})
        else:
            fresh.append(path)
    if len(fresh) < len(paths):
        log.info(f"{len(paths) - len(fresh)} image(s) of {folder} are already in the run's data: left out")
    probabilities, features, indices, failed = pool_answer(model, fresh) if fresh else (None, None, [], {})
    skipped += [{"path": str(fresh[i]), "reason": f"not a readable image ({reason})"} for i, reason in failed.items()]
    if not len(indices):
        raise DatasetError(f"no image of {folder} is left to label", "unlabelled images the run has not seen",
                           summarise([(s["path"], s["reason"]) for s in skipped], "images", "the skipped list"))
    seconds = {"features": time.perf_counter() - start}
    start = time.perf_counter()
    ranking = rank(probabilities, features, labelled_features(model), strategy, seed, depth=min(DEPTH, limit or DEPTH))
    seconds["rank"] = time.perf_counter() - start
    pool = [fresh[i] for i in indices]
    for i, (kind, twin) in ranking.duplicates.items():
        what = "a labelled image" if kind == "labelled" else f"{pool[twin]}, queued before it"
        skipped.append({"path": str(pool[i]), "reason": f"near duplicate of {what}"})
    rows = []
    for position, (i, reason) in enumerate(zip(ranking.order[:limit], ranking.reasons[:limit])):
        top = int(np.argmax(probabilities[i]))
        rows.append({"rank": position + 1, "path": str(pool[i]), "suggested": model.class_names[top],
                     "probability": round(float(probabilities[i, top]), 6),
                     "uncertainty": round(float(ranking.uncertainty[i]), 6), "reason": reason})
    return Queue(strategy, rows, skipped, len(known), seconds)
