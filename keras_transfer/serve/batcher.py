"""Gathering concurrent requests into engine batches, with a bounded queue.

Written here rather than taken from a library: the serving frameworks that batch (Ray Serve,
Triton, BentoML) are whole servers; what this needs is a queue and one task. Requests put their
images on an ``asyncio.Queue`` of bounded size (full: ``QueueFull``, which the app answers with
503 and ``Retry-After``); one task takes the first waiting item, then whatever else arrives
within ``max_wait`` seconds up to ``max_batch`` images, and runs them as one batch in a worker
thread, so the event loop keeps accepting and decoding uploads meanwhile. A request that finds
the server idle (the last batch was a single request, nothing else waits) runs at once: the wait
only pays off when requests come together.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np


class QueueFull(RuntimeError):
    """More images wait than the queue holds: the client should retry later."""


@dataclass
class _Item:
    pixels: np.ndarray  # (n, S, S, 3) uint8, the images of one request
    done: asyncio.Future


class Batcher:
    """``await batcher.submit(pixels)`` -> (probabilities, unknown scores) of those images."""

    def __init__(self, infer, max_batch: int = 32, max_wait: float = 0.005, max_queue: int = 256):
        self.infer, self.max_batch, self.max_wait = infer, max_batch, max_wait
        self.queue: asyncio.Queue[_Item] = asyncio.Queue(max_queue)
        self.batches = self.images = 0  # engine calls made, and images they classified
        self._task: asyncio.Task | None = None
        self._held: _Item | None = None  # taken from the queue, too big for the batch it came to
        self._together = False  # whether the last batch gathered several requests

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def submit(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        item = _Item(pixels, asyncio.get_running_loop().create_future())
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            raise QueueFull(f"{self.queue.maxsize} requests are already waiting") from None
        return await item.done

    async def _gather(self) -> list[_Item]:
        """The next batch: at most ``max_batch`` images (a larger request alone), in arrival order."""
        first, self._held = self._held or await self.queue.get(), None
        wait = self.max_wait if self._together or not self.queue.empty() else 0.0
        items, count, deadline = [first], len(first.pixels), time.monotonic() + wait
        while count < self.max_batch:
            left = deadline - time.monotonic()
            try:
                item = self.queue.get_nowait() if left <= 0 else await asyncio.wait_for(self.queue.get(), left)
            except (asyncio.QueueEmpty, TimeoutError):
                break
            if count + len(item.pixels) > self.max_batch:
                self._held = item  # first in the next batch
                break
            items.append(item)
            count += len(item.pixels)
        self._together = len(items) > 1
        return items

    async def _run(self) -> None:
        while True:
            items = await self._gather()
            try:
                probabilities, scores = await asyncio.to_thread(self.infer, np.concatenate([i.pixels for i in items]))
            except Exception as error:  # handed to every waiting request; the loop goes on
                for item in items:
                    if not item.done.done():
                        item.done.set_exception(error)
                continue
            self.batches += 1
            self.images += len(probabilities)
            start = 0
            for item in items:
                end = start + len(item.pixels)
                if not item.done.done():  # a client that went away cancelled its future
                    item.done.set_result((probabilities[start:end], scores[start:end]))
                start = end
