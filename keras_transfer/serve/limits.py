"""The server's limits (no FastAPI import: the CLI reads their defaults for its help)."""

from __future__ import annotations

from dataclasses import dataclass


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
