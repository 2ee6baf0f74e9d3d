"""The settings of one ``collect`` run, validated before any download."""

from __future__ import annotations

from dataclasses import dataclass, fields

from keras_transfer.base.errors import ConfigError


@dataclass(frozen=True)
class CollectOptions:
    """How ``collect`` downloads, checks and sorts images.

    Attributes:
        per_host: Connections open at once to one host.
        connections: Connections open at once in all.
        timeout: Seconds to connect, and between two reads; a download takes at most 6 times this.
        retries: Further tries after a timeout, a connection error, 408, 429 or 5xx.
        backoff: Seconds before the first retry, doubled each time (unless ``Retry-After`` says).
        max_wait: The longest ``Retry-After`` honoured, in seconds; a longer one fails the URL.
        max_bytes: Larger files are not downloaded (``too_large``).
        max_redirects: Redirects followed per URL.
        min_side: Images with a shorter side are left out (``too_small``).
        max_pixels: Images with more pixels are left out (``too_large``: decompression bombs).
        val_fraction / test_fraction: Share of each class cut as ``val`` / ``test`` among the
            labelled images the URL list gives no split (both 0: plain class folders).
        seed: Seed of that cut.
        retry_failed: Also fetch again URLs that failed for good last time (404, not an image ...).
    """

    per_host: int = 4
    connections: int = 16
    timeout: float = 10.0
    retries: int = 3
    backoff: float = 0.5
    max_wait: float = 60.0
    max_bytes: int = 20 * 2**20
    max_redirects: int = 5
    min_side: int = 32
    max_pixels: int = 80_000_000
    val_fraction: float = 0.2
    test_fraction: float = 0.0
    seed: int = 0
    retry_failed: bool = False

    def __post_init__(self) -> None:
        checks = [("per_host", self.per_host >= 1, "a whole number >= 1"),
                  ("connections", self.connections >= 1, "a whole number >= 1"),
                  ("timeout", self.timeout > 0, "seconds > 0"),
                  ("retries", self.retries >= 0, "a whole number >= 0"),
                  ("backoff", self.backoff >= 0, "seconds >= 0"),
                  ("max_wait", self.max_wait >= 0, "seconds >= 0"),
                  ("max_bytes", self.max_bytes >= 1, "bytes >= 1"),
                  ("max_redirects", self.max_redirects >= 0, "a whole number >= 0"),
                  ("min_side", self.min_side >= 1, "pixels >= 1"),
                  ("max_pixels", self.max_pixels >= 1, "pixels >= 1"),
                  ("val_fraction", 0 <= self.val_fraction < 1, "a number in [0, 1)"),
                  ("test_fraction", 0 <= self.test_fraction < 1, "a number in [0, 1)"),
                  ("val_fraction", self.val_fraction + self.test_fraction < 1,
                   "--val-fraction + --test-fraction below 1 (images must be left to train on)")]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"invalid --{name.replace('_', '-')}", expected, repr(getattr(self, name)))

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}
