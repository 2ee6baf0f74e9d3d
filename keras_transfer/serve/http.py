"""The HTTP pieces ``serve`` and the studio share: the JSON error shape, the body-size limit, the
bearer token, the error handlers (a 4xx saying what was wrong, a 500 without a traceback) and the
JSON body reader."""

from __future__ import annotations

import hmac
import logging

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from keras_transfer.base.errors import ConfigError


def error_response(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status, headers=headers)


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes (declared or streamed) gets 413."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        too_big = f"the request is larger than the limit of {self.limit:,} bytes"
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await error_response(413, too_big)(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, too_big)
            return message

        return await self.app(scope, counted, send)


class BearerToken:
    """ASGI middleware: every request but ``OPEN`` paths must carry ``Authorization: Bearer <token>``."""

    OPEN = ("/", "/v1/health")

    def __init__(self, app, token: str):
        self.app, self.expected = app, f"Bearer {token}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in self.OPEN:
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(b"authorization", b"")
        if not hmac.compare_digest(given, self.expected):
            why = "a wrong token" if given else "no token"
            return await error_response(401, f"this server needs a token: send the header 'Authorization: Bearer TOKEN' "
                                     f"(the request had {why})", {"WWW-Authenticate": "Bearer"})(scope, receive, send)
        return await self.app(scope, receive, send)


def add_error_handlers(app: FastAPI, logger: logging.Logger, log_name: str = "the server log") -> None:
    """Every failure answers ``{"error", "status"}``: the router's 404/405 and ``HTTPException`` as they
    are, invalid requests 422 with what was wrong, anything unexpected 500 (its traceback to ``logger``)."""

    @app.exception_handler(StarletteHTTPException)  # FastAPI's HTTPException and the router's 404 / 405
    async def http_error(request: Request, error: StarletteHTTPException):
        return error_response(error.status_code, str(error.detail), getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        return error_response(422, f"invalid request ({problems})")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception):
        logger.exception("unexpected error on %s", request.url.path)
        return error_response(500, f"internal error ({type(error).__name__}); {log_name} has the details")


async def json_body(request: Request) -> dict:
    """The request's body as a JSON object, or a typed error saying what it was instead."""
    try:
        value = await request.json()
    except ValueError:
        raise ConfigError("the request body is not JSON", "a JSON object", "unreadable") from None
    if not isinstance(value, dict):
        raise ConfigError("the request body is not a JSON object", "a JSON object", type(value).__name__)
    return value
