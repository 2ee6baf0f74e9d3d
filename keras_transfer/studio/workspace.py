"""The studio's workspace: one data folder, the run that answers for it, and the fixes made to it.

Everything the studio writes lives under ``root`` (default ``<run>/studio``): the corrections
table (``corrections.csv``, the table ``train --corrections`` reads), the refit runs
(``runs/refit-NNN``), the snapshots of the table each refit trained on, the apply journals and
the trash of excluded files. The data folder is read, never written, except by
:meth:`Workspace.apply_to_folder` (and :meth:`Workspace.undo`, which puts it back).

An image's id everywhere is its path relative to the data folder, ``/``-separated (an image
added from elsewhere: ``<class>/<file name>``, the path it will have once applied).

Example:
    >>> ws = Workspace.open("photos", "runs/photos")  # doctest: +SKIP
    >>> ws.fix(["roses/12.jpg"], "relabel", "tulips")  # doctest: +SKIP
    {'changed': 1, 'corrections': 1, ...}
    >>> ws.refit()["accuracy"]  # doctest: +SKIP
    {'before': 0.91, 'after': 0.92}
"""

from __future__ import annotations

import dataclasses
import json
from functools import cached_property
from pathlib import Path

from keras_transfer.base.errors import DatasetError, unknown_choice
from keras_transfer.base.paths import write_json
from keras_transfer.config import TrainConfig, dataset_of
from keras_transfer.data.corrections import Correction, added_id, read_corrections, relative_id, write_corrections
from keras_transfer.data.dataset import Dataset
from keras_transfer.run.folder import Run
from keras_transfer.run.model import RunModel

STATE = "workspace.json"
TABLE = "corrections.csv"
FIXES = ("relabel", "exclude", "restore")


class Workspace:
    """A data folder, its current run and the fixes made in the studio. Use :meth:`open`.

    Attributes:
        data: The image folder (absolute).
        root: The workspace folder (absolute).
        base: The run the workspace was opened on.
    """

    def __init__(self, data: Path, root: Path, base: Run):
        self.data, self.root, self.base = data, root, base
        self._model: RunModel | None = None

    @classmethod
    def open(cls, data: str | Path, run: str | Path | Run, root: str | Path | None = None) -> Workspace:
        """The workspace of ``data`` and the trained ``run`` (created on first use, reopened after).

        Args:
            data: The image folder (one folder per class); never written except by ``apply_to_folder``.
            run: A run folder trained on ``data`` (a solved or Keras head).
            root: The workspace folder (default: ``<run>/studio``).

        Example:
            >>> ws = Workspace.open("../shared/datasets/flowers5", "runs/flowers5")  # doctest: +SKIP
            >>> len(ws.images())  # doctest: +SKIP
            4317
        """
        base = Run.open(run)
        data = Path(data).expanduser().absolute()
        if not data.is_dir():
            raise DatasetError(f"data folder not found: {data}", "a folder with one sub-folder per class")
        trained_on = Path(base.config.data)
        if trained_on.is_absolute() and trained_on.is_dir() and trained_on.resolve() == data.resolve():
            data = trained_on  # the run's own spelling: its saved predictions name images by it
        root = Path(root).absolute() if root is not None else base.path.absolute() / "studio"
        if root == data or data in root.parents:
            raise DatasetError(f"the studio workspace {root} lies inside the data folder {data}",
                               "a workspace outside the data folder (nothing is written into it but by apply)",
                               hint="pass another root")
        workspace = cls(data, root, base)
        state = workspace.state()
        if state and Path(state["data"]) != data:
            raise DatasetError(f"the workspace {root} belongs to another data folder", state["data"], str(data),
                               hint="pass another root")
        if not state:
            root.mkdir(parents=True, exist_ok=True)
            workspace.save_state({"data": str(data), "base_run": str(base.path.absolute()),
                                  "current_run": str(base.path.absolute()), "refits": 0, "applied": []})
        return workspace

    # -- state ------------------------------------------------------------------------------
    def state(self) -> dict:
        """What ``workspace.json`` holds (``{}`` before the first use)."""
        file = self.root / STATE
        return json.loads(file.read_text()) if file.is_file() else {}

    def save_state(self, state: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_json(self.root / STATE, state)

    def update_state(self, **changes) -> dict:
        state = {**self.state(), **changes}
        self.save_state(state)
        return state

    @property
    def run(self) -> Run:
        """The run of the current model: the base run, or the latest refit."""
        return Run.open(self.state()["current_run"])

    @property
    def model(self) -> RunModel:
        """The current run's model (``RunModel.open``), opened once per run."""
        if self._model is None or self._model.run.path != self.run.path:
            self._model = RunModel.open(self.run)
        return self._model

    @property
    def corrections_path(self) -> Path:
        """The corrections table (``train --corrections`` reads it)."""
        return self.root / TABLE

    def corrections(self) -> dict[str, Correction]:
        """The fixes made so far, by image path (added images by their absolute path)."""
        return read_corrections(self.corrections_path) if self.corrections_path.is_file() else {}

    def config(self, corrections: str | None = None) -> TrainConfig:
        """The base run's config on this data folder (its splits), with ``corrections`` if given."""
        return dataclasses.replace(self.base.config, data=str(self.data), corrections=corrections)

    @cached_property
    def folder_dataset(self) -> Dataset:
        """The data folder as the base run split it, labels from the folders (no corrections)."""
        dataset = dataset_of(self.config())
        if not set(self.base.class_names) & set(dataset.class_names):  # (apply / add a class change the set)
            raise DatasetError(f"the run {self.base.path} was not trained on {self.data}",
                               f"its classes {', '.join(self.base.class_names)}",
                               f"class folders {', '.join(dataset.class_names)}", hint="pass the run's data folder")
        return dataset

    @cached_property
    def index(self) -> dict[str, tuple[str, str]]:
        """Each image id of the data folder -> (split, folder label)."""
        dataset = self.folder_dataset
        return {relative_id(item, self.data): (name, dataset.class_names[int(label)])
                for name, split in dataset.splits.items() for item, label in zip(split.items, split.labels)}

    def reload(self) -> None:
        """Forgets what was read of the data folder (after apply / undo moved files)."""
        self.__dict__.pop("folder_dataset", None)
        self.__dict__.pop("index", None)
        self._model = None

    # -- images -----------------------------------------------------------------------------
    def images(self) -> list[dict]:
        """Every image: ``{"id", "label" (after corrections), "original" (folder label; None for an
        added image), "split", "excluded", "added"}``.

        Example:
            >>> ws.images()[0]  # doctest: +SKIP
            {'id': 'daisy/100080576_f52e8ee070_n.jpg', 'label': 'daisy', 'original': 'daisy', 'split': 'train', ...}
        """
        from keras_transfer.studio.refit import added_images

        table, rows = self.corrections(), []
        for image, (split, original) in self.index.items():
            fix = table.get(image)
            rows.append({"id": image, "label": fix.label if fix and fix.action == "relabel" else original,
                         "original": original, "split": split, "excluded": bool(fix and fix.action == "exclude"),
                         "added": False})
        for image, path, label, split in added_images(table, self.config()):
            rows.append({"id": image, "label": label, "original": None, "split": split, "excluded": False,
                         "added": True, "path": str(path)})
        return rows

    def class_names(self) -> list[str]:
        """The folder's classes, then the added ones."""
        added = sorted({fix.label for fix in self.corrections().values() if fix.added})
        return [*self.folder_dataset.class_names, *(n for n in added if n not in self.folder_dataset.class_names)]

    def path_of(self, image: str, table: dict[str, Correction] | None = None) -> Path:
        """The file of an image id (an added image's own file); a typed error for an unknown id."""
        if image in self.index:
            return self.data / image
        for fix in (self.corrections() if table is None else table).values():
            if fix.added and added_id(fix.label, fix.path) == image:
                return Path(fix.path)
        raise DatasetError(f"unknown image id {image!r}", "the id of an image of the studio (its path "
                           f"relative to {self.data})", image)

    # -- fixes ------------------------------------------------------------------------------
    def fix(self, ids: list[str], action: str, label: str | None = None) -> dict:
        """Records a fix of images in the corrections table (never in the data folder).

        Args:
            ids: Image ids.
            action: ``relabel`` (to ``label``), ``exclude`` (left out of training and the
                figures) or ``restore`` (the folder's label back, included again).
            label: The new class of a relabel: one of :meth:`class_names`.

        Returns:
            ``{"changed": images whose fix changed, "corrections": rows in the table, "ids": ids}``.

        Raises:
            ConfigError: An unknown action.
            DatasetError: An unknown id, a class that does not exist, a file that vanished.
        """
        if action not in FIXES:
            raise unknown_choice("fix", action, FIXES)
        if action == "relabel" and label not in self.class_names():
            raise DatasetError(f"no class {label!r} to relabel to", "one of " + ", ".join(self.class_names()),
                               repr(label), hint="adding a class is its own action (add_class)")
        table = self.corrections()
        added = {added_id(fix.label, fix.path): key for key, fix in table.items() if fix.added}
        before = dict(table)
        for image in ids:
            path = self.path_of(image, table)
            if not path.is_file():
                raise DatasetError(f"the image {image} vanished", f"a file at {path}", "no such file",
                                   hint="reload the studio: the folder changed on disk")
        for image in ids:
            if image in added:
                self._fix_added(table, added[image], action, label)
                continue
            original = self.index[image][1]
            if action == "restore" or (action == "relabel" and label == original):
                table.pop(image, None)
            else:
                table[image] = Correction(image, action, label if action == "relabel" else None)
        write_corrections(self.corrections_path, table)
        changed = sum(before.get(key) != table.get(key) for key in set(before) | set(table))
        return {"changed": changed, "corrections": len(table), "ids": list(ids), "action": action, "label": label}

    def _fix_added(self, table: dict, key: str, action: str, label: str | None) -> None:
        """An added image: relabel changes its class, exclude removes it from the workspace."""
        if action == "exclude":
            table.pop(key, None)
        elif action == "relabel":
            table[key] = Correction(key, table[key].action, label)

    def keep_one(self, group: list[str], keep: str) -> dict:
        """A duplicate group: excludes every image of ``group`` but ``keep`` (which is restored)."""
        if keep not in group:
            raise DatasetError(f"{keep!r} is not in the duplicate group", "one of " + ", ".join(group), keep)
        self.fix([keep], "restore")
        result = self.fix([image for image in group if image != keep], "exclude")
        return {**result, "kept": keep}

    # -- the heavier actions, each in its own module ---------------------------------------
    def refit(self, progress=None) -> dict:
        """Refits the head from the cached features with the fixes; see ``studio/refit.py``."""
        from keras_transfer.studio.refit import refit

        return refit(self, progress)

    def add_class(self, name: str, folder: str | Path, progress=None) -> dict:
        """Adds a class from a folder of images (referenced, not copied) and refits; see ``studio/refit.py``."""
        from keras_transfer.studio.refit import add_class

        return add_class(self, name, Path(folder), progress)

    def apply_to_folder(self) -> dict:
        """Writes the fixes into the data folder, journal first; see ``studio/journal.py``."""
        from keras_transfer.studio.journal import apply_to_folder

        return apply_to_folder(self)

    def undo(self) -> dict:
        """Restores the data folder exactly as before the last apply; see ``studio/journal.py``."""
        from keras_transfer.studio.journal import undo

        return undo(self)

    def cam_png(self, image: str) -> bytes:
        """The class activation map of the predicted class over the image, as PNG; see ``studio/cam.py``."""
        from keras_transfer.studio.cam import cam_png

        return cam_png(self, image)

    def neighbours(self, image: str, k: int = 8) -> list[dict]:
        """The nearest training images by cosine on the cached features; see ``studio/neighbours.py``."""
        from keras_transfer.studio.neighbours import neighbours

        return neighbours(self, image, k)

    def likely_label_errors(self) -> list[dict]:
        """Images whose label is likely wrong (out-of-fold, cleanlab); see ``studio/neighbours.py``."""
        from keras_transfer.studio.neighbours import likely_label_errors

        return likely_label_errors(self)
