"""One studio session: the data folder, the run, its workspace (``studio.workspace``), the cached
views and thumbnails, the job queue and the serving child process. The app's routes call it."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from keras_transfer.base.errors import ConfigError, DatasetError, RunError
from keras_transfer.run.folder import Files, Run
from keras_transfer.studio.thumbs import Thumbnails
from keras_transfer.studio.views import Views

FIX_ACTIONS = ("relabel", "exclude", "restore")
EXPORT_FORMATS = ("onnx", "openvino", "litert")


class UnknownImage(ConfigError):
    """An image id the workspace does not have (HTTP 404)."""


class VanishedImage(DatasetError):
    """An image the workspace lists whose file is gone from the data folder (HTTP 409)."""


def _progress(lines):
    """The workspace's progress callback, ``(step, fraction done)``, as one line per call."""
    def report(step, fraction=None) -> None:
        lines(f"{step} ({fraction:.0%})" if isinstance(fraction, (int, float)) else str(step))
    return report


class Session:
    """The studio's state between requests."""

    def __init__(self, data: Path, run: Path, root, jobs, token: str | None):
        if not Path(data).is_dir():
            raise DatasetError(f"data folder not found: {data}", "a folder of class folders", str(data))
        self.data, self.run_path, self.root, self.jobs, self.token = Path(data), Path(run), root, jobs, token
        self.ws = None
        self._views: Views | None = None
        self._thumbs: Thumbnails | None = None
        self.server = None  # a serve.process.ServerProcess once "serve" ran
        if self.run_path.is_dir() and (self.run_path / "config.json").exists():
            self._open(Run.open(self.run_path))

    def _open(self, run) -> None:
        from keras_transfer.studio.workspace import Workspace

        self.ws = Workspace.open(self.data, run, root=self.root)
        self._views = Views(self.ws, self.jobs.call)

    @asynccontextmanager
    async def lifespan(self, app):
        yield
        if self.server is not None:
            self.server.stop()

    # --- reads --------------------------------------------------------------------------------------
    def views(self) -> Views:
        if self._views is None:
            raise RunError(f"no run yet at {self.run_path}", "a trained run", "none",
                           hint="train one from the page first")
        return self._views

    def state(self) -> dict:
        latest = self.jobs.latest()
        return {"data": str(self.data), "run": str(self.run_path), "ready": self.ws is not None,
                "summary": self.views().summary() if self.ws is not None else None,
                "job": latest.as_dict() if latest else None, "queued": len(self.jobs.active()),
                "serving": self.server.url if self.server is not None else None,
                "token": bool(self.token)}

    def known(self, image_id: str) -> str:
        """The id, once it is known to the workspace and its file still exists."""
        if image_id not in self.views().images():
            raise UnknownImage(f"unknown image {image_id!r}", f"an image id of {self.data} (a path relative to it)",
                               image_id)
        if not Path(self.ws.path_of(image_id)).is_file():
            raise VanishedImage(f"the file of image {image_id!r} vanished from {self.data}",
                                "the image file in the data folder", "nothing at that path",
                                hint="restore it, or reload the studio to drop it")
        return image_id

    def detail(self, image_id: str) -> dict:
        return self.views().detail(self.known(image_id))

    def thumbnail(self, image_id: str) -> bytes:
        if self._thumbs is None:
            self._thumbs = Thumbnails(Path(self.views().ws.root) / "thumbnails")
        return self._thumbs.jpeg(image_id, self.ws.path_of(self.known(image_id)))

    def cam(self, image_id: str) -> bytes:
        return self.jobs.call(self.ws.cam_png, self.known(image_id)).result()

    # --- fixes --------------------------------------------------------------------------------------
    def fix(self, body: dict) -> dict:
        ids, action, label = body.get("ids"), body.get("action"), body.get("label")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise ConfigError("no images to fix", "'ids': a non-empty list of image ids", repr(ids)[:80])
        if action not in FIX_ACTIONS:
            raise ConfigError(f"unknown fix {action!r}", f"'action': one of {', '.join(FIX_ACTIONS)}", repr(action))
        if action == "relabel" and label not in self.ws.class_names():
            raise ConfigError(f"unknown class {label!r}", f"one of {', '.join(self.ws.class_names())}",
                              repr(label), hint="add a new class with 'add a class' first")
        for image_id in ids:
            self.known(image_id)
        result = self.ws.fix(ids, action, label if action == "relabel" else None)
        self._views.forget()
        return {"fixed": len(ids), "result": result, "summary": self._views.summary()}

    def keep_one(self, body: dict) -> dict:
        group, keep = body.get("group"), body.get("keep")
        if not isinstance(group, list) or not all(isinstance(i, str) for i in group) or keep not in group:
            raise ConfigError("keep one of a group", "'group': the ids of a duplicate group, 'keep': one of them",
                              f"group {repr(group)[:80]}, keep {keep!r}")
        for image_id in group:
            self.known(image_id)
        result = self.ws.keep_one(group, keep)
        self._views.forget()
        return {"kept": keep, "result": result, "summary": self._views.summary()}

    # --- jobs ---------------------------------------------------------------------------------------
    def action(self, name: str, body: dict) -> dict:
        """Queues the job ``name`` and returns it (the page polls ``/api/jobs/<id>``)."""
        starts = {"train": self._train, "refit": self._refit, "add_class": self._add_class,
                  "apply": self._apply, "undo": self._undo, "export": self._export, "serve": self._serve}
        if name not in starts:
            raise UnknownImage(f"no action {name!r}", f"one of fix, keep_one, {', '.join(starts)}", name)
        if name != "train":
            self.views()  # a run is needed
        work = starts[name](body)
        return self.jobs.submit(name, work, then=lambda result: self._views and self._views.forget()).as_dict()

    def _train(self, body: dict):
        from keras_transfer.config import TrainConfig
        from keras_transfer.run.train import train

        if self.ws is not None:
            raise RunError(f"the studio has a run already: {self.ws.run.path}", "no run (train from the page once)",
                           str(self.run_path), hint="train into another folder with `keras-transfer studio --run`")
        backbone = body.get("backbone") or None
        if backbone is not None and not isinstance(backbone, str):
            raise ConfigError("invalid backbone", "a backbone name (keras-transfer backbones lists them)",
                              repr(backbone))
        config = TrainConfig(data=str(self.data), backbone=backbone)
        config.validate()  # a bad backbone is said now, not in the job

        def work(progress):
            progress(f"training on {self.data.name} with {config.backbone}: features, head, evaluation")
            run = train(config, self.run_path)
            timing = run.read(Files.TIMING) or {}
            if "total_seconds" in timing:
                progress(f"trained in {timing['total_seconds']:.1f} s "
                         f"(features {timing.get('feature_seconds', 0):.1f} s)")
            self._open(run)
            return {"run": str(run.path), "accuracy": run.metrics.get("accuracy")}
        return work

    def _refit(self, body: dict):
        return lambda progress: self.ws.refit(progress=_progress(progress))

    def _add_class(self, body: dict):
        name, folder = body.get("name"), body.get("folder")
        if not isinstance(name, str) or not name.strip() or "/" in name:
            raise ConfigError("a new class needs a name", "'name': a class name without '/'", repr(name))
        if name in self.ws.class_names():
            raise ConfigError(f"class {name!r} exists already", "a new class name", name)
        if not isinstance(folder, str) or not Path(folder).expanduser().is_dir():
            raise DatasetError(f"folder not found: {folder}", "'folder': a folder of images of the new class",
                               repr(folder))
        folder = str(Path(folder).expanduser())
        return lambda progress: self.ws.add_class(name.strip(), folder, progress=_progress(progress))

    def _apply(self, body: dict):
        return lambda progress: self.ws.apply_to_folder()

    def _undo(self, body: dict):
        return lambda progress: self.ws.undo()

    def _export(self, body: dict):
        formats = body.get("formats") or ["onnx"]
        if not isinstance(formats, list) or not formats or any(f not in EXPORT_FORMATS for f in formats):
            raise ConfigError("unknown export format", f"'formats': some of {', '.join(EXPORT_FORMATS)}",
                              repr(formats)[:80])

        def work(progress):
            from keras_transfer.export.build import export_run, require_litert
            from keras_transfer.export.parity import write_parity

            run = self.ws.run
            if "litert" in formats:
                require_litert()
            files = {}
            for fmt in formats:
                progress(f"exporting {fmt}")
                files[fmt] = export_run(run, fmt, None, False, parity=False)
            progress("parity: the exported files against the run on the held-out images")
            rows = write_parity(run, files)
            return {"rows": rows, "folder": str(run.export_dir)}
        return work

    def _serve(self, body: dict):
        def work(progress):
            from keras_transfer.serve.process import ServerProcess

            if self.server is not None:
                self.server.stop()
                self.server = None
            progress(f"starting `keras-transfer serve {self.ws.run.path}`")
            server = ServerProcess([str(self.ws.run.path)], ["--token", self.token] if self.token else [])
            self.server = server.__enter__()  # waits until /v1/health answers
            return {"url": server.url + "/", "run": str(self.ws.run.path)}
        return work
