"""``keras-transfer serve`` as a child process on a free loopback port: for tests, benchmarks and notebooks.

Example:
    >>> with ServerProcess(["runs/ants"]) as server:  # doctest: +SKIP
    ...     httpx.post(server.url + "/v1/predict", files={"files": open("bee.jpg", "rb")}).json()
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """Starts the server, waits until ``/v1/health`` answers 200; stops it with SIGTERM on exit."""

    def __init__(self, runs: list[str], options: list[str] = (), timeout: float = 120.0, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.argv = [sys.executable, "-m", "keras_transfer.cli", "serve", *map(str, runs),
                     "--port", str(self.port), "-q", *options]
        self.timeout, self.env = timeout, env
        self.process: subprocess.Popen | None = None
        self.returncode: int | None = None
        self.log = ""

    def __enter__(self) -> ServerProcess:
        self._output = tempfile.TemporaryFile("w+")  # a file, not a pipe: a full pipe would block the server
        self.process = subprocess.Popen(self.argv, stdout=self._output, stderr=subprocess.STDOUT, text=True,
                                        env=self.env or {**os.environ})
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"the server exited with {self.returncode}:\n{self.log}")
            try:
                with urllib.request.urlopen(self.url + "/v1/health", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:  # not listening yet, or 503 while the models load
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server did not become healthy in {self.timeout} s:\n{self.log}")

    def stop(self) -> int:
        """SIGTERM, then the exit code (killed after 20 s); the output is in ``log``."""
        if self.process is not None and self.returncode is None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.returncode = self.process.returncode
            self._output.seek(0)
            self.log = self._output.read()
            self._output.close()
        return self.returncode

    def __exit__(self, *exc) -> None:
        self.stop()
