"""Downloading one URL with httpx: bounded connections per host, timeouts, retries with backoff,
``Retry-After`` honoured, a size cap, and redirects followed by hand (each hop's scheme checked,
loops and long chains refused)."""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from dataclasses import dataclass, replace

from keras_transfer.collect.options import CollectOptions

TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
TRANSIENT_REASONS = frozenset({"timeout", "connection_error"})
SCHEMES = ("http", "https")


@dataclass(frozen=True)
class Fetched:
    """A download's outcome: the bytes, or a failure ``reason`` (``http_status``, ``timeout``,
    ``connection_error``, ``too_large``, ``too_many_redirects``, ``unsupported_scheme``,
    ``invalid_url``) with the HTTP ``status`` and a ``detail``; ``wait``: the server's Retry-After."""

    content: bytes | None
    reason: str = ""
    detail: str = ""
    status: int | None = None
    attempts: int = 1
    wait: float | None = None

    @property
    def transient(self) -> bool:
        """Worth trying again: a timeout, a dropped connection, 408, 425, 429 or a 5xx the server may get over."""
        return self.reason in TRANSIENT_REASONS or (self.reason == "http_status" and self.status in TRANSIENT_STATUS)


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date), None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time()) if when is not None else None


class Fetcher:
    """Fetches URLs through one ``httpx.AsyncClient`` (made by :func:`client`)."""

    def __init__(self, client, options: CollectOptions):
        self.client, self.options = client, options
        self._hosts: dict[str, asyncio.Semaphore] = {}

    async def fetch(self, url: str) -> Fetched:
        """The URL's bytes after at most ``1 + retries`` tries, or why not."""
        o = self.options
        for attempt in range(1, o.retries + 2):
            result = replace(await self._follow(url), attempts=attempt)
            if result.content is not None or not result.transient or attempt > o.retries:
                return result
            wait = result.wait if result.wait is not None else o.backoff * 2 ** (attempt - 1) * (1 + random.random() / 4)
            if wait > o.max_wait:
                return replace(result, detail=f"{result.detail}; Retry-After {wait:.0f} s is beyond --max-wait {o.max_wait:g} s")
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def _follow(self, url: str) -> Fetched:
        import httpx

        seen = [url]
        for _ in range(self.options.max_redirects + 1):
            try:
                location = await self._get(seen[-1])
            except httpx.InvalidURL as error:
                return Fetched(None, "invalid_url", str(error))
            if not isinstance(location, str):
                return location
            if location.split(":", 1)[0].lower() not in SCHEMES:
                return Fetched(None, "unsupported_scheme", f"redirected to {location[:200]}")
            if location in seen:
                return Fetched(None, "too_many_redirects", "redirect loop: " + " -> ".join(seen[-3:] + [location]))
            seen.append(location)
        return Fetched(None, "too_many_redirects", f"more than {self.options.max_redirects} redirects (--max-redirects)")

    async def _get(self, url: str) -> Fetched | str:
        """One request: the bytes, a failure, or the next URL (a redirect's absolute Location)."""
        import httpx

        o = self.options
        host = httpx.URL(url).host
        slot = self._hosts.setdefault(host, asyncio.Semaphore(o.per_host))
        async with slot:
            try:
                async with asyncio.timeout(6 * o.timeout):
                    async with self.client.stream("GET", url) as response:
                        return await self._read(response)
            except (httpx.TimeoutException, TimeoutError):
                return Fetched(None, "timeout", f"no complete answer within the time limits (--timeout {o.timeout:g} s)")
            except httpx.UnsupportedProtocol as error:
                return Fetched(None, "unsupported_scheme", str(error))
            except httpx.InvalidURL:
                raise
            except (httpx.TransportError, httpx.DecodingError) as error:
                return Fetched(None, "connection_error", f"{type(error).__name__}: {error}"[:300])

    async def _read(self, response) -> Fetched | str:
        o = self.options
        if response.is_redirect and response.headers.get("location"):
            return str(response.url.join(response.headers["location"]))
        if response.status_code != 200:
            return Fetched(None, "http_status", f"HTTP {response.status_code} {response.reason_phrase}".strip(),
                           response.status_code, wait=retry_after(response.headers.get("retry-after")))
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > o.max_bytes:
            return Fetched(None, "too_large", f"{int(declared)} bytes declared, over --max-bytes {o.max_bytes}", 200)
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > o.max_bytes:
                return Fetched(None, "too_large", f"over --max-bytes {o.max_bytes} bytes", 200)
            chunks.append(chunk)
        return Fetched(b"".join(chunks), status=200)


def client(options: CollectOptions, user_agent: str):
    """The shared ``httpx.AsyncClient``: redirects off (followed by :class:`Fetcher`), connection limits, timeouts."""
    import httpx

    return httpx.AsyncClient(timeout=httpx.Timeout(options.timeout), follow_redirects=False,
                             limits=httpx.Limits(max_connections=options.connections,
                                                 max_keepalive_connections=options.connections),
                             headers={"User-Agent": user_agent})
