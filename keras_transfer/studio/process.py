"""``keras-transfer studio`` as a child process on a free loopback port: for tests and benchmarks.

Example:
    >>> with StudioProcess("photos", ["--run", "runs/photos"]) as studio:  # doctest: +SKIP
    ...     httpx.get(studio.url + "/api/state").json()["ready"]
    True
"""

from __future__ import annotations

import sys

from keras_transfer.serve.process import ServerProcess, free_port


class StudioProcess(ServerProcess):
    """Starts the studio on ``data`` with ``options``; ready once ``/v1/health`` answers 200; SIGTERM on exit."""

    def __init__(self, data: str, options: list[str] = (), timeout: float = 120.0, env: dict | None = None):
        super().__init__([], options, timeout, env)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.argv = [sys.executable, "-m", "keras_transfer.cli", "studio", str(data), "--port", str(self.port), "-q",
                     *options]
