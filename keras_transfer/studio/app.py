"""The studio's FastAPI app: the page at ``/`` and a JSON API under ``/api/`` over one workspace.

The serve app's pieces are reused, not copied: its error shape (``{"error", "status"}``), its
body limit and its bearer-token middleware. With a token, every request but the page (static, no
data) must carry ``Authorization: Bearer <token>``; thumbnails and heat maps are ``<img>`` tags,
which cannot send a header, so the page also stores the token in a same-site cookie that the
``_TokenCookie`` middleware turns into that header. Long actions (train, refit, add a class,
export, serve) are background jobs (``studio.jobs``), one at a time; the page polls ``/api/jobs``.
"""

from __future__ import annotations

import asyncio
import logging
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from keras_transfer.base.errors import ConfigError, KerasTransferError, RunError
from keras_transfer.serve.http import BearerToken, BodyLimit, add_error_handlers, error_response, json_body
from keras_transfer.studio.jobs import Jobs
from keras_transfer.studio.session import Session, UnknownImage, VanishedImage

logger = logging.getLogger("keras_transfer.studio")
COOKIE = "kt_studio_token"
MAX_BODY = 1_000_000  # the API takes small JSON bodies only


class _TokenCookie:
    """ASGI middleware: a request with the token cookie and no Authorization header gets the header."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            if b"authorization" not in headers and b"cookie" in headers:
                for part in headers[b"cookie"].split(b";"):
                    name, _, value = part.strip().partition(b"=")
                    if name == COOKIE.encode() and value:
                        scope = {**scope, "headers": [*scope["headers"], (b"authorization", b"Bearer " + value)]}
                        break
        return await self.app(scope, receive, send)


def _status(error: Exception) -> int:
    """The HTTP status of a typed error: an unknown image 404, a vanished file or no run yet 409, bad input 422."""
    if isinstance(error, UnknownImage):
        return 404
    if isinstance(error, (VanishedImage, RunError)):
        return 409
    return 422


def create_app(data: str | Path, run: str | Path, token: str | None = None, root: str | Path | None = None) -> FastAPI:
    """The studio of the data folder ``data`` and the run folder ``run`` (trained from the page when absent).

    Args:
        data: The data folder (never written to but by "apply to folder").
        run: The run folder to open, or to train into from the page.
        token: When set, every API request needs ``Authorization: Bearer <token>`` (or its cookie).
        root: The workspace folder (default: the workspace's own, ``<run>/studio``).
    """
    jobs = Jobs()
    session = Session(Path(data), Path(run), root, jobs, token)
    app = FastAPI(title="keras-transfer studio", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=session.lifespan)
    app.add_middleware(BodyLimit, limit=MAX_BODY)
    if token:
        app.add_middleware(BearerToken, token=token)
        app.add_middleware(_TokenCookie)  # added last: runs first, before the token check
    app.state.session = session

    add_error_handlers(app, logger, "the studio's log")

    @app.exception_handler(KerasTransferError)
    async def typed(request: Request, error: KerasTransferError):
        return error_response(_status(error), str(error))

    @app.exception_handler(FileNotFoundError)
    async def vanished(request: Request, error: FileNotFoundError):
        return error_response(404, f"no such image in {session.data}: {error.filename or error}")

    def off_loop(function, *args):
        return asyncio.to_thread(function, *args)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        html = resources.files("keras_transfer.studio").joinpath("page.html").read_text()
        return HTMLResponse(html.replace("/*TOKEN_REQUIRED*/false", "true" if token else "false"))

    @app.get("/v1/health", include_in_schema=False)
    async def health():
        """200 once the studio listens (open without a token, as serve's: for probes and scripts)."""
        return {"status": "ok"}

    @app.get("/api/state")
    async def state():
        return await off_loop(session.state)

    @app.get("/api/grid")
    async def grid(view: str = "all", offset: int = 0, limit: int = 120, name: str | None = None,
                   true: str | None = None, predicted: str | None = None):
        if offset < 0 or not 1 <= limit <= 1000:
            raise ConfigError("invalid page", "offset >= 0 and limit from 1 to 1000", f"offset {offset}, limit {limit}")
        params = {"name": name, "true": true, "predicted": predicted}
        return await off_loop(lambda: session.views().grid(view, params, offset, limit))

    @app.get("/api/image/{image_id:path}")
    async def image(image_id: str):
        return await off_loop(session.detail, image_id)

    @app.get("/api/thumb/{image_id:path}")
    async def thumb(image_id: str):
        jpeg = await off_loop(session.thumbnail, image_id)
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/api/cam/{image_id:path}")
    async def cam(image_id: str):
        return Response(await off_loop(session.cam, image_id), media_type="image/png")

    @app.post("/api/fix")
    async def fix(request: Request):
        return await off_loop(session.fix, await json_body(request))

    @app.post("/api/keep_one")
    async def keep_one(request: Request):
        return await off_loop(session.keep_one, await json_body(request))

    @app.post("/api/{action}")
    async def start(action: str, request: Request):
        """A background job (train, refit, add_class, export, serve) or a folder action (apply, undo)."""
        return await off_loop(session.action, action, await json_body(request))

    @app.get("/api/jobs/{job_id}")
    async def job(job_id: int):
        found = jobs.get(job_id)
        if found is None:
            return error_response(404, f"no job {job_id}")
        return found.as_dict()

    from keras_transfer.studio.inbox import inbox_router

    app.include_router(inbox_router(session))  # /api/inbox/...: unlabelled images, labelled in turn
    return app


def run_studio(data: str, run: str, host: str = "127.0.0.1", port: int = 8765, token: str | None = None,
               quiet: bool = False) -> None:
    """Serves the studio until interrupted (uvicorn, one process: the workspace lives in it).

    Raises:
        ConfigError: A bad port, a bad token, or an address other than loopback without a token.
    """
    import uvicorn

    from keras_transfer.serve import LOOPBACK
    from keras_transfer.serve.limits import check_address

    check_address(port, 1)
    if token is not None and (not token.strip() or any(c.isspace() for c in token)):
        raise ConfigError("invalid --token", "a non-empty token without spaces", f"{len(token)} characters")
    if token is None and host not in LOOPBACK:
        raise ConfigError(f"the studio would listen on {host} without a token",
                          "--token TOKEN for any address other than 127.0.0.1 / localhost", f"--host {host}",
                          hint="anyone who can reach that address could change your data: choose a token")
    app = create_app(data, run, token)
    from keras_transfer.base import log

    log.info(f"studio of {data} (run {run}): http://{'127.0.0.1' if host in LOOPBACK else host}:{port}/")
    uvicorn.run(app, host=host, port=port, log_level="warning" if quiet else "info", timeout_graceful_shutdown=5)
