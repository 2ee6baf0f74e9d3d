"""Refit in seconds: the fixes of the corrections table, a new run from the cached features.

A refit is ``run.train.train`` with the base run's config plus ``corrections=<a snapshot of the
table>``: the same splits (fixes apply after they are cut), the same solver, the same run-folder
writing, so predict / serve / export / evaluate work on it like on any run. Only images whose
features are not in the shared cache go through the backbone (an added class's new images).
A refit skips the pixel baseline (the base run's stays the reference, measured on the folder's
labels) and the cross-validation of the head's L2 strength: it reuses the C its run chose (by
cross-validation on that run's training images, never on held-out ones; ``--solver-c``). Both
would cost more than the head itself.

The before / after figures come from the previous run's and the new run's saved predictions on
the held-out split, on the images both hold (a held-out image excluded by a fix leaves both),
scored with the corrected labels; when a fix touched a held-out image both figures are also
given with the folder's original labels, and the touched images are listed.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from keras_transfer.base.errors import DatasetError
from keras_transfer.config import TrainConfig
from keras_transfer.data.corrections import (Correction, added_id, added_split, apply_corrections, relative_id,
                                             write_corrections)
from keras_transfer.data.dataset import Dataset, Split
from keras_transfer.data.images import is_image_file
from keras_transfer.evaluation.metrics import classification_metrics
from keras_transfer.run.folder import Run
from keras_transfer.run.model import RunModel

Progress = Callable[[str, float], None]  # (step: "features" | "head" | "evaluation" | "done", fraction done)


def added_images(table: dict[str, Correction], config: TrainConfig,
                 held_out: str = "val") -> list[tuple[str, Path, str, str]]:
    """(id, file, class, split) of every added image, split as ``apply_corrections`` splits them."""
    added = [fix for fix in table.values() if fix.added]
    return [(added_id(label, path), path, label, held_out if held else "train")
            for path, label, held in added_split(added, config.val_fraction, config.seed)]


def refit(ws, progress: Progress | None = None) -> dict:
    """Trains a new run from the cached features with the workspace's fixes and makes it current.

    Args:
        ws: The ``Workspace``.
        progress: Called with (step, fraction done) as the refit goes.

    Returns:
        ``{"run", "accuracy": {"before", "after"}, "per_class": [{"class", "before", "after"}],
        "held_out_touched": [ids], "held_out": which images, "seconds"}`` (+ ``"original_labels"``:
        the same figures with the folder's labels, when a fix touched a held-out image).
    """
    from threadpoolctl import threadpool_limits

    from keras_transfer.run.train import train

    start, report = time.perf_counter(), progress or (lambda step, fraction: None)
    state = ws.state()
    number = int(state.get("refits", 0)) + 1
    snapshot = ws.root / "corrections" / f"{number:03d}.csv"  # what this run trained on, kept as it was
    write_corrections(snapshot, ws.corrections())
    chosen = (ws.run.metrics.get("selection") or {}).get("C")  # by cross-validation on training images only
    config = dataclasses.replace(ws.config(str(snapshot)), baseline=False,
                                 solver_c=float(chosen) if isinstance(chosen, (int, float)) else None)
    out = ws.root / "runs" / f"refit-{number:03d}"
    shutil.rmtree(out, ignore_errors=True)  # of an earlier refit that did not finish
    before, model = ws.run, ws.model  # the model before: it answers for added held-out images
    report("head", 0.1)
    # One BLAS thread: the head's L-BFGS makes many small BLAS calls, where a thread pool mostly
    # waits (flowers5 refit, 2 busy cores: 9.5 s wall / 3.2 s CPU vs 13.9 s / 4.8 s with the pool).
    with threadpool_limits(limits=1, user_api="blas"):
        run = train(config, out, corrected_dataset(ws, config))
    report("evaluation", 0.9)
    ws.update_state(current_run=str(out), refits=number)
    result = compare(ws, before, run, model)
    report("done", 1.0)
    return {"run": str(out), **result, "seconds": round(time.perf_counter() - start, 3)}


def corrected_dataset(ws, config: TrainConfig) -> Dataset:
    """The folder as the workspace read it (a copy: the listing is not re-read from disk), with
    ``config``'s corrections applied: what ``dataset_of(config)`` gives."""
    folder = ws.folder_dataset
    copy = dataclasses.replace(folder, class_names=list(folder.class_names), splits=dict(folder.splits),
                               skipped=list(folder.skipped), notes=list(folder.notes), layout=dict(folder.layout))
    return apply_corrections(copy, config.corrections, config.data, config.val_fraction, config.seed)


def compare(ws, before: Run, after: Run, model: RunModel | None = None) -> dict:
    """Held-out figures of two runs on the images both hold, with the corrected (and original) labels.

    Held-out images of an added class (which only the new run holds) are scored for the run
    before too, by ``model`` (its ``RunModel``, opened again if not given).
    """
    old, new = before.predictions(), after.predictions()
    if old is None:  # a run from before predictions.npz: nothing to compare with
        from keras_transfer.evaluation.predictions import Predictions

        old = Predictions(new.split, new.ids[:0], new.indices[:0], new.labels[:0],
                          np.zeros((0, len(before.class_names)), np.float32))
    names = after.class_names
    table, folder = ws.corrections(), ws.index
    added = {str(Path(fix.path)): fix.label for fix in table.values() if fix.added}
    position = {str(path): i for i, path in enumerate(old.ids)}
    rows = [(position[str(path)], j) for j, path in enumerate(new.ids) if str(path) in position]
    fresh = [j for j, path in enumerate(new.ids) if str(path) not in position and str(path) in added]
    if fresh:  # added images held out: what the model before (which never saw their class) answers
        answer, _ = (model or RunModel.open(before)).predict_files([Path(new.ids[j]) for j in fresh], desc="before")
        old = dataclasses.replace(old, ids=np.concatenate([old.ids, new.ids[fresh]]),
                                  probabilities=np.concatenate([old.probabilities, answer.probabilities]))
        rows += [(len(position) + k, j) for k, j in enumerate(fresh)]
    ids = [_image_id(ws, str(new.ids[j]), added) for _, j in rows]
    corrected = np.array([names.index(_label(table, folder, image, added, path=str(new.ids[j])))
                          for image, (_, j) in zip(ids, rows)], np.int64)
    original = np.array([names.index(folder[image][1] if image in folder else added[str(new.ids[j])])
                         for image, (_, j) in zip(ids, rows)], np.int64)
    old_p = np.zeros((len(rows), len(names)), np.float32)
    for k, name in enumerate(before.class_names):
        old_p[:, names.index(name)] = old.probabilities[[i for i, _ in rows], k] if rows else 0
    new_p = new.probabilities[[j for _, j in rows]] if rows else np.zeros((0, len(names)), np.float32)
    touched = sorted(image for image, fix in table.items() if not fix.added and image in folder
                     and folder[image][0] == old.split)
    figures = _figures(corrected, old_p, new_p, names, before.class_names)
    left_out = len(position) - (len(rows) - len(fresh))
    result = {**figures, "held_out_touched": touched,
              "held_out": f"{new.split}: {len(rows)} images held out from both fits, the same before and after, "
                          "scored with the corrected labels"
                          + (f", {len(fresh)} of them images of an added class" if fresh else "")
                          + (f" ({left_out} held-out image(s) excluded by fixes left out of both)" if left_out else "")}
    if touched:
        result["original_labels"] = {**_figures(original, old_p, new_p, names, before.class_names),
                                     "note": f"{len(touched)} held-out image(s) were fixed: these figures score "
                                             "the same images with the folder's original labels"}
    return result


def _image_id(ws, path: str, added: dict[str, str]) -> str:
    return added_id(added[path], path) if path in added else relative_id(path, ws.data)


def _label(table: dict, folder: dict, image: str, added: dict, path: str) -> str:
    fix = table.get(image)
    if fix is not None and fix.action == "relabel":
        return fix.label
    return folder[image][1] if image in folder else added[path]


def _figures(labels: np.ndarray, old_p: np.ndarray, new_p: np.ndarray, names: list[str], old_names: list[str]) -> dict:
    if not len(labels):
        return {"accuracy": {"before": None, "after": None}, "per_class": []}
    old_m, new_m = (classification_metrics(labels, p, names) for p in (old_p, new_p))

    def pr(metrics: dict, name: str) -> dict:
        row = metrics["per_class"][name]
        return {"precision": round(row["precision"], 4), "recall": round(row["recall"], 4), "support": row["support"]}

    return {"accuracy": {"before": round(old_m["accuracy"], 4), "after": round(new_m["accuracy"], 4)},
            "per_class": [{"class": name, "before": pr(old_m, name) if name in old_names else {},
                           "after": pr(new_m, name)} for name in names]}


def add_class(ws, name: str, folder: Path, progress: Progress | None = None) -> dict:
    """Adds class ``name`` from the images in ``folder`` (referenced from the workspace, copied into
    the data folder only by ``apply_to_folder``), extracts only their features, and refits.

    Returns:
        The refit's figures (the new class's ``before`` empty) plus ``"class"``, ``"added"``
        (images) and ``"extraction_seconds"`` (the new images' features, timed apart).
    """
    report = progress or (lambda step, fraction: None)
    name = name.strip()
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise DatasetError("invalid class name", "a folder name (no slashes, not starting with a dot)", repr(name))
    if name in ws.class_names():
        raise DatasetError(f"class {name!r} exists already", "a new class name",
                           name, hint="relabel images to an existing class instead")
    folder = Path(folder).expanduser().absolute()
    if not folder.is_dir():
        raise DatasetError(f"folder not found: {folder}", "a folder of images of the new class")
    if folder == ws.data or ws.data in folder.parents:
        raise DatasetError(f"{folder} lies inside the data folder", "a folder outside it (its images are added)")
    files = sorted(path for path in folder.iterdir() if path.is_file() and is_image_file(path))
    if len(files) < 2:
        raise DatasetError(f"{folder} holds {len(files)} image(s)", "at least 2 (one to learn from, one held out)")
    report("features", 0.0)
    start = time.perf_counter()
    split = Split("added", files, np.zeros(len(files), np.int64))
    _, decoded = ws.model.source.view(split, 0, desc=f"features {name}")  # the shared cache only
    extraction = time.perf_counter() - start
    table = ws.corrections()
    for i in decoded:
        table[str(files[i])] = Correction(str(files[i]), "add", name)
    write_corrections(ws.corrections_path, table)
    result = refit(ws, lambda step, fraction: report(step, 0.3 + 0.7 * fraction))
    return {**result, "class": name, "added": len(decoded), "undecodable": len(files) - len(decoded),
            "extraction_seconds": round(extraction, 3)}
