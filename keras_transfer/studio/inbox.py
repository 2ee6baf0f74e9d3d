"""The studio's inbox: a folder of unlabelled images, in the order ``run.queue`` ranks them, labelled
one by one into the workspace's corrections table.

Routes (``inbox_router``; the app mounts them with ``app.include_router(inbox_router(session))``):

- ``POST /api/inbox/open`` ``{"folder", "strategy"?}``: ranks the folder (a background job: the new
  images' features are extracted once, then cached); the page polls ``/api/jobs/<id>``;
- ``GET /api/inbox/next?limit=N``: the next images with the model's suggestion and probability;
- ``POST /api/inbox/label`` ``{"path", "label"}``: the image joins class ``label``'s training images (a
  ``label`` row of the corrections table: referenced, never copied into the data folder; unlike "add a
  class", none is held out, so every point of the learning curve is measured on the same images);
- ``POST /api/inbox/skip`` ``{"path"}``: the image goes to the end of the queue;
- ``POST /api/inbox/rerank`` ``{"strategy"?}``: ranks again with the current run (after a refit,
  which is the studio's own ``POST /api/refit``); records a learning-curve point when the run changed;
- ``GET /api/inbox/curve``: those points, ``{"labels", "accuracy", "run", "held_out"}``;
- ``GET /api/inbox/thumb?path=...``: the thumbnail of a queued image (queued paths only).
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response

from keras_transfer.base.errors import ConfigError, DatasetError
from keras_transfer.base.paths import write_json
from keras_transfer.data.corrections import Correction, write_corrections
from keras_transfer.run.queue import build_queue
from keras_transfer.serve.http import json_body
from keras_transfer.strategies.active import STRATEGIES

STATE = "inbox.json"  # in the workspace folder


class Inbox:
    """The inbox of one workspace: its folder, queue, skipped images and learning curve."""

    def __init__(self, workspace):
        self.ws, self.rows, self._lock = workspace, [], threading.Lock()
        file = self.ws.root / STATE
        self.state = json.loads(file.read_text()) if file.is_file() else {"folder": None, "strategy": "mixed",
                                                                            "skipped": [], "labelled": [], "curve": []}

    def _save(self) -> None:
        write_json(self.ws.root / STATE, self.state)

    def rank(self, folder: str | None = None, strategy: str | None = None) -> dict:
        """Ranks ``folder`` (default: the open one) with the current run; a curve point if the run changed."""
        folder = folder or self.state["folder"]
        if not folder:
            raise ConfigError("no inbox folder", "POST /api/inbox/open with {'folder': a folder of unlabelled images}")
        strategy = strategy or self.state["strategy"]
        if strategy not in STRATEGIES:
            raise ConfigError(f"unknown strategy {strategy!r}", "one of " + ", ".join(STRATEGIES), repr(strategy))
        queue = build_queue(self.ws.model, Path(folder).expanduser().absolute(), strategy)
        run, metrics = self.ws.run, self.ws.run.metrics
        with self._lock:
            skipped = set(self.state["skipped"])
            self.rows = ([r for r in queue.rows if r["path"] not in skipped]
                         + [r for r in queue.rows if r["path"] in skipped])
            self.state.update(folder=str(folder), strategy=strategy)
            curve = self.state["curve"]
            if not curve or curve[-1]["run"] != str(run.path):
                curve.append({"labels": len(self.state["labelled"]), "accuracy": metrics.get("accuracy"),
                              "run": str(run.path), "held_out": metrics.get("evaluated_images")})
            self._save()
        return {"folder": str(folder), "strategy": strategy, "queued": len(self.rows), "skipped": queue.skipped,
                "seconds": queue.seconds}

    def next(self, limit: int = 10) -> list[dict]:
        """The next ``limit`` queued images (labelled ones left out), each with the model's suggestion."""
        with self._lock:
            done = set(self.state["labelled"])
            return [r for r in self.rows if r["path"] not in done][:limit]

    def _queued(self, path) -> str:
        if not isinstance(path, str) or path not in {r["path"] for r in self.rows}:
            raise DatasetError(f"not a queued image: {str(path)[:200]}", "the path of an image /api/inbox/next listed",
                               repr(path)[:200])
        if not Path(path).is_file():
            raise DatasetError(f"the image {path} vanished", "a file at that path", "no such file")
        return path

    def label(self, path: str, label: str) -> dict:
        """Image ``path`` joins class ``label`` in the corrections table (an ``add`` row)."""
        path = self._queued(path)
        if label not in self.ws.class_names():
            raise DatasetError(f"no class {label!r}", "one of " + ", ".join(self.ws.class_names()), repr(label),
                               hint="adding a class is its own action (add_class)")
        with self._lock:
            table = self.ws.corrections()
            table[path] = Correction(path, "label", label)  # training only: the held-out split stays put
            write_corrections(self.ws.corrections_path, table)
            if path not in self.state["labelled"]:
                self.state["labelled"].append(path)
            self._save()
            return {"path": path, "label": label, "labelled": len(self.state["labelled"])}

    def skip(self, path: str) -> dict:
        """Image ``path`` goes to the end of the queue (and stays there after a re-rank)."""
        path = self._queued(path)
        with self._lock:
            self.rows = [r for r in self.rows if r["path"] != path] + [r for r in self.rows if r["path"] == path]
            if path not in self.state["skipped"]:
                self.state["skipped"].append(path)
            self._save()
        return {"path": path, "skipped": len(self.state["skipped"])}

    def curve(self) -> list[dict]:
        return list(self.state["curve"])


def inbox_router(session):
    """The inbox's routes over a studio ``Session`` (its workspace, jobs and thumbnails)."""
    router, holder = APIRouter(), {}

    def inbox() -> Inbox:
        session.views()  # a run is needed (the session's own typed error otherwise)
        if holder.get("ws") is not session.ws:
            holder.update(ws=session.ws, inbox=Inbox(session.ws))
        return holder["inbox"]

    def job(kind: str, folder=None, strategy=None) -> dict:
        box = inbox()
        return session.jobs.submit(kind, lambda progress: box.rank(folder, strategy)).as_dict()

    @router.post("/api/inbox/open")
    async def open_folder(request: Request):
        values = await json_body(request)
        folder = values.get("folder")
        if not isinstance(folder, str) or not Path(folder).expanduser().is_dir():
            raise DatasetError("inbox folder not found", "'folder': a folder of unlabelled images", repr(folder)[:200])
        return await asyncio.to_thread(job, "inbox", folder, values.get("strategy"))

    @router.post("/api/inbox/rerank")
    async def rerank(request: Request):
        return await asyncio.to_thread(job, "rerank", None, (await json_body(request)).get("strategy"))

    @router.get("/api/inbox/next")
    async def next_images(limit: int = 10):
        if not 1 <= limit <= 200:
            raise ConfigError("invalid limit", "a whole number from 1 to 200", str(limit))
        box = await asyncio.to_thread(inbox)
        return {"images": box.next(limit), "classes": session.ws.class_names(), "strategy": box.state["strategy"],
                "labelled": len(box.state["labelled"])}

    @router.post("/api/inbox/label")
    async def label(request: Request):
        values = await json_body(request)
        box = await asyncio.to_thread(inbox)
        return await asyncio.to_thread(box.label, values.get("path"), values.get("label"))

    @router.post("/api/inbox/skip")
    async def skip(request: Request):
        values = await json_body(request)
        box = await asyncio.to_thread(inbox)
        return await asyncio.to_thread(box.skip, values.get("path"))

    @router.get("/api/inbox/curve")
    async def curve():
        return {"points": (await asyncio.to_thread(inbox)).curve()}

    @router.get("/api/inbox/thumb")
    async def thumb(path: str):
        from keras_transfer.studio.thumbs import Thumbnails

        box = await asyncio.to_thread(inbox)
        source = box._queued(path)
        jpeg = await asyncio.to_thread(Thumbnails(box.ws.root / "thumbnails").jpeg, f"inbox:{source}", Path(source))
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    return router
