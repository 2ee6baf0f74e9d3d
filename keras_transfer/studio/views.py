"""What the studio page shows, as JSON-ready dicts: the first screen, the grids behind a confusion
cell / the top losses / a class / an audit finding, and one image's facts.

Every figure comes from the workspace's current run through its owner (``run.folder.Run``:
``metrics.json``, ``predictions.npz``, ``audit.json``); image ids are the workspace's (the path
relative to the data folder, ``/``-separated).
"""

from __future__ import annotations

import logging
import math
import os
import threading
from pathlib import Path

import numpy as np

from keras_transfer.base.errors import ConfigError
from keras_transfer.run.folder import Files

logger = logging.getLogger("keras_transfer.studio")
VIEWS = ("all", "cell", "losses", "class", "finding", "corrected")
FINDINGS = {"duplicates": "exact duplicate groups", "leakage": "duplicates across splits",
            "label_errors": "likely label errors", "odd_files": "odd, damaged or skipped files"}


class Views:
    """Reads of one workspace, cached until the run or the corrections change (``forget``)."""

    def __init__(self, workspace, on_worker):
        self.ws, self.on_worker = workspace, on_worker  # on_worker(f, *args) -> Future: f on the jobs' thread
        self._cache: dict = {}
        self._lock = threading.Lock()
        self._errors: tuple = (None, None)  # (run, Future of {id: error})

    def forget(self) -> None:
        self._cache.clear()

    def _cached(self, key: str, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    # --- the workspace's images and the run's held-out predictions ---------------------------------
    def images(self) -> dict[str, dict]:
        return self._cached("images", lambda: {i["id"]: i for i in self.ws.images()})

    def image_id(self, path: str) -> str:
        """The workspace id of a path the run recorded (absolute, or already relative to the data)."""
        if path in self.images():
            return path
        try:
            return Path(os.path.abspath(path)).relative_to(Path(os.path.abspath(self.ws.data))).as_posix()
        except ValueError:
            return Path(path).as_posix()

    def predictions(self) -> dict[str, tuple[int, np.ndarray]]:
        """Held-out id -> (true class index, calibrated probabilities)."""
        def make():
            run = self.ws.run
            saved = run.predictions()
            if saved is None:
                return {}
            saved = saved.with_temperature(run.temperature)
            return {self.image_id(str(i)): (int(label), row) for i, label, row in
                    zip(saved.ids, saved.labels, saved.probabilities)}
        return self._cached("predictions", make)

    def label_errors(self, wait: bool = False) -> dict[str, dict] | None:
        """Likely label errors of the current run by id; None while they are computed (out-of-fold
        heads: seconds, so the first screen does not wait for them)."""
        run = str(self.ws.run.path)
        with self._lock:
            if self._errors[0] != run:
                self._errors = (run, self.on_worker(self._find_errors))
            future = self._errors[1]
        if not (wait or future.done()):
            return None
        return future.result()

    def _find_errors(self) -> dict[str, dict]:
        try:
            return {e["id"]: e for e in self.ws.likely_label_errors()}
        except Exception:  # logged; the rest of the studio works without them
            logger.exception("likely label errors failed")
            return {}

    def findings(self) -> dict[str, list[list[str]]]:
        """Audit finding name -> groups of image ids (a group per duplicate set, one image per label error)."""
        def make():
            audit = self.ws.run.read(Files.AUDIT) or {}
            found = {name: [] for name in FINDINGS if name != "label_errors"}
            for finding in audit.get("findings", []):
                ids = [self.image_id(m["file"]) for m in finding.get("images", []) if "file" in m]
                if finding.get("kind") in ("exact_duplicate", "near_duplicate"):
                    found["duplicates"].append(ids)
                    if finding.get("scope") == "across splits":
                        found["leakage"].append(ids)
                elif finding.get("kind") in ("odd_file", "damaged"):
                    found["odd_files"].append(ids)
            for place in audit.get("skipped_inputs", {}).get("inputs", []):
                found["odd_files"].append([self.image_id(str(place.get("input", "")))])
            return found
        errors = self.label_errors()
        return {**self._cached("findings", make),
                "label_errors": None if errors is None else [[i] for i in errors if i]}

    # --- the first screen -------------------------------------------------------------------------
    def summary(self) -> dict:
        run = self.ws.run
        metrics = run.metrics
        images = self.images().values()
        changed = [i for i in images if i["excluded"] or i["label"] != i["original"]]
        baseline = metrics.get("baseline") or self.ws.base.metrics.get("baseline") or {}  # refits skip it
        return {"run": str(run.path), "data": str(self.ws.data), "classes": run.class_names,
                "labels": self.ws.class_names(),
                "accuracy": metrics.get("accuracy"), "baseline": baseline.get("accuracy"),
                "baseline_method": baseline.get("method"), "evaluated": metrics.get("evaluated_images"),
                "split": metrics.get("split"), "n": metrics.get("n"),
                "per_class": [{"class": name, **{k: row.get(k) for k in ("precision", "recall", "f1", "support")}}
                              for name, row in (metrics.get("per_class") or {}).items()],
                "confusion": metrics.get("confusion_matrix"),
                "findings": {name: {"count": None if groups is None else len(groups), "title": FINDINGS[name]}
                             for name, groups in self.findings().items()},
                "images": len(self.images()), "corrections": len(changed)}

    # --- grids ------------------------------------------------------------------------------------
    def grid(self, view: str, params: dict, offset: int = 0, limit: int = 120) -> dict:
        """One page of a grid: ``{"title", "total", "items": [{"id", "label", "predicted", ...}]}``."""
        if view not in VIEWS:
            raise ConfigError(f"unknown view {view!r}", f"one of {', '.join(VIEWS)}", view)
        title, ids, groups = self._select(view, params)
        page = ids[offset: offset + limit]
        return {"title": title, "view": view, "total": len(ids), "offset": offset, "limit": limit,
                "items": [self._item(i, groups.get(i)) for i in page]}

    def _select(self, view: str, params: dict) -> tuple[str, list[str], dict[str, int]]:
        classes, predictions, groups = self.ws.run.class_names, self.predictions(), {}
        if view == "cell":
            true, predicted = (self._class_index(params.get(k)) for k in ("true", "predicted"))
            ids = [i for i, (label, p) in predictions.items() if label == true and int(p.argmax()) == predicted]
            title = f"true {classes[true]}, predicted {classes[predicted]}"
        elif view == "losses":
            losses = {i: -math.log(max(float(p[label]), 1e-12)) for i, (label, p) in predictions.items()}
            ids = sorted(losses, key=lambda i: -losses[i])
            title = "top losses (held-out images the run got most wrong)"
        elif view == "class":
            name = classes[self._class_index(params.get("name"))] if params.get("name") in classes else \
                self._known_label(params.get("name"))
            ids = [i for i, image in self.images().items() if image["label"] == name]
            title = f"class {name}"
        elif view == "finding":
            name = params.get("name")
            if name not in FINDINGS:
                raise ConfigError(f"unknown audit finding {name!r}", f"one of {', '.join(FINDINGS)}", str(name))
            ids = []
            if name == "label_errors":
                self.label_errors(wait=True)
            for number, group in enumerate(self.findings()[name]):
                for i in group:
                    if i not in groups:
                        ids.append(i)
                        groups[i] = number
            title = FINDINGS[name]
        elif view == "corrected":
            ids = [i for i, m in self.images().items() if m["excluded"] or m["label"] != m["original"]]
            title = "corrected images"
        else:
            ids, title = list(self.images()), "every image"
        return title, ids, groups

    def _class_index(self, value) -> int:
        classes = self.ws.run.class_names
        if isinstance(value, str) and value in classes:
            return classes.index(value)
        try:
            index = int(value)
        except (TypeError, ValueError):
            index = -1
        if not 0 <= index < len(classes):
            raise ConfigError(f"unknown class {value!r}", f"a class of the run: {', '.join(classes)}", str(value))
        return index

    def _known_label(self, name) -> str:
        labels = {image["label"] for image in self.images().values()}
        if name not in labels:
            raise ConfigError(f"unknown class {name!r}", f"one of {', '.join(sorted(labels))}", str(name))
        return name

    def _item(self, image_id: str, group: int | None) -> dict:
        image = self.images().get(image_id, {"label": None, "original": None, "split": None, "excluded": False})
        item = {"id": image_id, "label": image["label"], "original": image["original"], "split": image["split"],
                "excluded": image["excluded"], "group": group, "known": image_id in self.images()}
        if image_id in self.predictions():
            _, probabilities = self.predictions()[image_id]
            best = int(probabilities.argmax())
            item.update(predicted=self.ws.run.class_names[best], confidence=round(float(probabilities[best]), 4))
        errors = self.label_errors() or {}
        if image_id in errors:
            item["suggested"] = errors[image_id].get("suggested")
        return item

    # --- one image --------------------------------------------------------------------------------
    def detail(self, image_id: str, neighbours: int = 8) -> dict:
        item = self._item(image_id, None)
        if image_id in self.predictions():
            _, probabilities = self.predictions()[image_id]
            item["probabilities"] = sorted(({"class": c, "p": round(float(p), 4)} for c, p in
                                            zip(self.ws.run.class_names, probabilities)), key=lambda r: -r["p"])
            item["held_out"] = True
        error = (self.label_errors() or {}).get(image_id)
        item["label_error"] = {"score": error.get("score"), "suggested": error.get("suggested")} if error else None
        item["neighbours"] = self.on_worker(self.ws.neighbours, image_id, neighbours).result()
        return item
