"""The FastAPI app: health, models, predict (batched), a Grad-CAM overlay, and the page at ``/``.

Every answer that is not a success is JSON ``{"error": "...", "status": N}``: bad uploads get a
4xx saying what was wrong, a full queue 503 with ``Retry-After``, and anything unexpected a 500
without a traceback (the traceback goes to the server log). FastAPI's own docs pages load their
scripts from a CDN, so they are off; ``/openapi.json`` stays.

With a token (``serve --token`` or ``$KERAS_TRANSFER_TOKEN``) every request but the page at ``/``
(static, no data) and ``/v1/health`` (for load balancers and probes) must carry
``Authorization: Bearer <token>``; without it: 401 in the same JSON shape.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
from contextlib import asynccontextmanager
from importlib import resources

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import UploadFile

from keras_transfer.serve.batcher import Batcher, QueueFull
from keras_transfer.serve.http import BearerToken, BodyLimit, add_error_handlers
from keras_transfer.serve.limits import Limits
from keras_transfer.serve.models import BadUpload, ServedModel, decode

logger = logging.getLogger("keras_transfer.serve")


def create_app(run_paths: list[str], limits: Limits | None = None, token: str | None = None) -> FastAPI:
    """The app serving ``run_paths`` (the first is the default model); models load in the background.

    With ``token``, requests other than the page and ``/v1/health`` need ``Authorization: Bearer <token>``.
    """
    limits = limits or Limits()
    models: dict[str, ServedModel] = {}
    batchers: dict[str, Batcher] = {}
    state = {"error": None, "loaded": False}
    decoding = asyncio.Semaphore(max(2, os.cpu_count() or 2))  # decoded images in memory at once, all requests
    explaining = asyncio.Semaphore(1)  # Grad-CAM runs Keras: one at a time, the others answered 503

    async def load() -> None:
        from threadpoolctl import threadpool_limits

        # One BLAS thread in the server: OpenBLAS's threads spin for a while after each of the head's small
        # products and take the cores the next image's inference needs (one image on a 2-core Xeon: 30 ms
        # with 2 BLAS threads, 15 ms with 1); OpenVINO, which does the heavy work, keeps every core.
        threadpool_limits(1, user_api="blas")
        try:
            for path in run_paths:
                model = await asyncio.to_thread(ServedModel.load, path)
                base, number = model.name, 1
                while model.name in models:  # two runs of the same folder name
                    number += 1
                    model.name = f"{base}-{number}"
                batcher = Batcher(model.infer, limits.max_batch, limits.max_wait_ms / 1000, limits.max_queue)
                batcher.start()
                models[model.name], batchers[model.name] = model, batcher
            state["loaded"] = True
        except Exception as error:  # reported by /v1/health; the server stays up to say so
            logger.exception(f"loading the models failed: {type(error).__name__}: {error}")
            state["error"] = f"{type(error).__name__}: {error}"

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        task = asyncio.create_task(load())
        yield
        task.cancel()
        for batcher in batchers.values():
            await batcher.stop()

    app = FastAPI(title="keras-transfer", version=_version(), lifespan=lifespan, docs_url=None, redoc_url=None)
    app.add_middleware(BodyLimit, limit=limits.max_request_bytes)
    if token:
        app.add_middleware(BearerToken, token=token)  # added last: runs first, before the body is read

    app.state.models, app.state.batchers, app.state.limits = models, batchers, limits

    add_error_handlers(app, logger)

    def ready() -> None:
        if state["error"]:
            raise HTTPException(503, f"the models failed to load: {state['error']}")
        if not state["loaded"]:
            raise HTTPException(503, "the models are still loading", headers={"Retry-After": "1"})

    def pick(name: str | None) -> ServedModel:
        ready()
        if name is None or name == "":
            return models[next(iter(models))]
        if name not in models:
            raise HTTPException(404, f"unknown model {name!r}; served: {', '.join(models)}")
        return models[name]

    @app.get("/v1/health")
    async def health():
        """200 once every model is loaded, with how many images each served in how many engine calls."""
        ready()
        return {"status": "ok", "models": list(models),
                "served": {name: {"images": b.images, "engine_calls": b.batches} for name, b in batchers.items()}}

    @app.get("/v1/models")
    async def list_models():
        ready()
        return {"models": [m.describe() for m in models.values()]}

    @asynccontextmanager
    async def uploads(request: Request):
        """(files, fields) of a multipart request; its spooled upload files are closed afterwards."""
        ready()  # nothing is parsed for a server that cannot answer
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise HTTPException(415, "send the images as multipart/form-data, field 'files'")
        try:
            form = await request.form(max_files=limits.max_files, max_fields=20)
        except StarletteHTTPException:  # too many files or fields: starlette's own 400
            raise
        except Exception as error:  # starlette's MultiPartException and malformed bodies
            raise HTTPException(400, f"unreadable multipart body ({error})") from error
        try:
            yield _files_and_fields(form)
        finally:
            await form.close()

    def _files_and_fields(form) -> tuple[list[UploadFile], dict[str, str]]:
        files = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        if not files:
            others = sorted({k for k, _ in form.multi_items()} - {"top_k", "model"})
            hint = f" (got field{'s' if len(others) > 1 else ''} {', '.join(map(repr, others))})" if others else ""
            raise HTTPException(422, f"no images: upload them in the multipart field 'files'{hint}")
        return files, fields

    async def decoded(files: list[UploadFile], model: ServedModel) -> list[np.ndarray | str]:
        """Each upload decoded off the event loop, or the reason it cannot be (in upload order)."""
        async def one(upload: UploadFile):
            data = await upload.read(limits.max_file_bytes + 1)
            if len(data) > limits.max_file_bytes:
                raise HTTPException(413, f"{upload.filename}: larger than the limit of {limits.max_file_bytes:,} bytes")
            try:
                async with decoding:
                    return await asyncio.to_thread(decode, data, model.size, model.model.resize_mode, limits.max_pixels)
            except BadUpload as error:
                if error.status == 413:
                    raise HTTPException(413, f"{upload.filename}: {error}") from error
                return str(error)

        return list(await asyncio.gather(*(one(f) for f in files)))

    @app.post("/v1/predict", openapi_extra=_PREDICT_SCHEMA)
    async def predict(request: Request):
        async with uploads(request) as (files, fields):
            model = pick(fields.get("model"))
            classes = len(model.model.class_names)
            top_k = _top_k(fields.get("top_k", str(min(3, classes))), classes)
            images = await decoded(files, model)
            good = [i for i, image in enumerate(images) if not isinstance(image, str)]
            results: list[dict] = [{"file": f.filename, "error": images[i]} if i not in good else {"file": f.filename}
                                   for i, f in enumerate(files)]
            if not good:
                raise HTTPException(422, "no readable image: " + "; ".join(f"{r['file']}: {r['error']}" for r in results))
            try:
                probabilities, scores = await batchers[model.name].submit(np.stack([images[i] for i in good]))
            except QueueFull as error:
                raise HTTPException(503, f"the server is busy ({error}); retry shortly", headers={"Retry-After": "1"})
            for row, i in enumerate(good):
                results[i].update(model.results(probabilities[row], float(scores[row]), top_k))
            return {"model": model.name, "results": results}

    explainers: dict[str, object] = {}

    def gradcam_png(model: ServedModel, pixels: np.ndarray, filename: str) -> bytes:
        from PIL import Image

        from keras_transfer.explain.explainer import _explanations, heatmaps
        from keras_transfer.explain.occlusion import explainer_for

        if model.name not in explainers:  # the caller holds ``explaining``: one at a time
            explainers[model.name] = explainer_for(model.run, model.model)
        explainer = explainers[model.name]
        maps = heatmaps(model.model, explainer, pixels[None])  # the class the run answers, as /v1/predict
        item = _explanations(model.model.class_names, [filename], [pixels], maps)[0]
        buffer = io.BytesIO()
        Image.fromarray(item.overlay()).save(buffer, format="PNG")
        return buffer.getvalue()

    @app.post("/v1/explain", responses={200: {"content": {"image/png": {}}}}, openapi_extra=_PREDICT_SCHEMA)
    async def explain(request: Request):
        """Grad-CAM overlay (PNG) of the first uploaded image for its predicted class (occlusion for a
        backbone with no layer to explain: onnx:, hub:, timm:)."""
        if explaining.locked():
            raise HTTPException(503, "a Grad-CAM is being computed; retry shortly", headers={"Retry-After": "2"})
        async with explaining, uploads(request) as (files, fields):
            model = pick(fields.get("model"))
            image = (await decoded(files[:1], model))[0]
            if isinstance(image, str):
                raise HTTPException(422, f"{files[0].filename}: {image}")
            png = await asyncio.to_thread(gradcam_png, model, image, files[0].filename or "upload")
        return Response(png, media_type="image/png")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        html = resources.files("keras_transfer.serve").joinpath("page.html").read_text()
        return HTMLResponse(html.replace("/*TOKEN_REQUIRED*/false", "true" if token else "false"))

    return app


def _top_k(value: str, classes: int) -> int:
    try:
        k = int(value)
    except ValueError:
        raise HTTPException(422, f"top_k must be a whole number, got {value!r}") from None
    if not 1 <= k <= classes:
        raise HTTPException(422, f"top_k must be between 1 and {classes} (the model's classes), got {k}")
    return k


def _version() -> str:
    import keras_transfer

    return keras_transfer.__version__


_PREDICT_SCHEMA = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["files"],
    "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                   "top_k": {"type": "integer", "default": 3, "minimum": 1},
                   "model": {"type": "string", "description": "a served model's name (default: the first)"}}}}}}}
