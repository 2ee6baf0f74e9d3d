"""The server's limits (no FastAPI import: the CLI reads their defaults for its help)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from keras_transfer.base.errors import ConfigError

# the CLI flag of each field (in megabytes / megapixels where the CLI counts those)
FLAGS = {"max_files": "--max-files", "max_file_bytes": "--max-file-mb", "max_request_bytes": "--max-request-mb",
         "max_pixels": "--max-megapixels", "max_batch": "--max-batch", "max_wait_ms": "--max-wait-ms",
         "max_queue": "--max-queue"}


@dataclass(frozen=True)
class Limits:
    """What one request may carry, and how requests are batched."""

    max_files: int = 16  # images per request
    max_file_bytes: int = 20_000_000
    max_request_bytes: int = 100_000_000
    max_pixels: int = 40_000_000  # width x height of one image, read from its header
    max_batch: int = 32  # images per engine call
    max_wait_ms: float = 5.0  # how long the first waiting image waits for others
    max_queue: int = 64  # requests waiting for the engine; beyond: 503 + Retry-After

    def validate(self) -> Limits:
        """Every limit positive (and the counts whole numbers); the CLI and ``serve()`` both call this."""
        for field in fields(self):
            value = getattr(self, field.name)
            whole = field.type == "int"
            if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)) or not 0 < value <= 1e12:
                raise ConfigError(f"invalid {FLAGS[field.name]}", "a whole number >= 1" if whole else "a positive number",
                                  repr(value))
        return self


def check_address(port: int, workers: int) -> None:
    """The port and worker count of ``serve`` (CLI and Python alike)."""
    for name, value, top in (("port", port, 65535), ("workers", workers, 64)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
            raise ConfigError(f"invalid --{name}", f"a whole number from 1 to {top}", repr(value))
