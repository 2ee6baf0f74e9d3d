"""Serving trained runs over HTTP: ``keras-transfer serve RUN [RUN...]`` (FastAPI + uvicorn).

``keras_transfer.serve.app.create_app`` builds the app; ``serve`` runs it with uvicorn,
which shuts down cleanly on Ctrl-C / SIGTERM (in-flight requests finish first).
"""

from __future__ import annotations

import dataclasses
import json
import os

from keras_transfer.base.errors import ConfigError
from keras_transfer.serve.limits import Limits, check_address

__all__ = ["Limits", "factory", "serve"]

_CONFIG_ENV = "KERAS_TRANSFER_SERVE"  # how worker processes receive the runs, limits and token
TOKEN_ENV = "KERAS_TRANSFER_TOKEN"  # the token when --token is not given
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def factory():
    """The app of the runs and limits in ``$KERAS_TRANSFER_SERVE`` (uvicorn's ``--factory``, one per worker)."""
    from keras_transfer.serve.app import create_app

    config = json.loads(os.environ[_CONFIG_ENV])
    return create_app(config["runs"], Limits(**config["limits"]), config.get("token"))


def serve(runs: list[str], host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          limits: Limits | None = None, quiet: bool = False, token: str | None = None) -> None:
    """Serves ``runs`` until interrupted. Each worker process loads every run.

    ``token`` (default: ``$KERAS_TRANSFER_TOKEN``): every API request must carry it as
    ``Authorization: Bearer <token>``; ``/v1/health`` and the page at ``/`` stay open. Listening on
    an address other than loopback without one prints a warning.
    """
    import uvicorn

    from keras_transfer.base import log
    from keras_transfer.run.folder import Run

    check_address(port, workers)
    token = token if token is not None else os.environ.get(TOKEN_ENV) or None
    if token is not None and (not token.strip() or any(c.isspace() for c in token)):
        raise ConfigError("invalid --token", "a non-empty token without spaces", f"{len(token)} characters")
    if token is None and host not in LOOPBACK:
        log.warn(f"serving on {host} without a token: anyone who can reach port {port} can use the models; "
                 f"set one with --token or ${TOKEN_ENV}")
    limits = (limits or Limits()).validate()
    for path in runs:  # a missing or incomplete run folder is said before anything starts
        Run.open(path)
    os.environ[_CONFIG_ENV] = json.dumps({"runs": [str(r) for r in runs],
                                          "limits": dataclasses.asdict(limits), "token": token})
    uvicorn.run("keras_transfer.serve:factory", factory=True, host=host, port=port, workers=workers,
                log_level="warning" if quiet else "info", timeout_graceful_shutdown=10)
