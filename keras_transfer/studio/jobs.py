"""The studio's background jobs: train, refit, add a class, export — one at a time, in order.

A job submitted while another runs waits in the queue (two refits are never mixed: the second starts
from the first one's result). Every call that reads the workspace's features (neighbours, heat maps,
label errors) runs on the same worker thread (``call``), ahead of queued jobs: the feature cache's
SQLite connection belongs to the thread that opened it. Each job's progress is a list of lines the
page polls: the lines the job reports itself, and the ``keras_transfer`` log messages (phase
summaries such as ``features train: 245 img in 14.0 s``) written while it runs, from any thread (the
feature extraction logs from its own); one job runs at a time, so they are the job's.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable

from keras_transfer.base.errors import KerasTransferError

logger = logging.getLogger("keras_transfer.studio")

STATES = ("queued", "running", "done", "failed")


@dataclass
class Job:
    """One background job and what the page shows of it."""

    id: int
    kind: str
    state: str = "queued"
    lines: list[str] = field(default_factory=list)
    result: object = None
    error: str | None = None
    started: float | None = None
    ended: float | None = None

    def as_dict(self) -> dict:
        seconds = None if self.started is None else round((self.ended or time.perf_counter()) - self.started, 2)
        return {"id": self.id, "kind": self.kind, "state": self.state, "lines": self.lines[-40:],
                "result": self.result, "error": self.error, "seconds": seconds}


class _Lines(logging.Handler):
    """Copies the log messages written while a job runs into its lines."""

    def __init__(self, job: Job):
        super().__init__(logging.INFO)
        self.job = job

    def emit(self, record: logging.LogRecord) -> None:
        self.job.lines.append(record.getMessage().splitlines()[0][:300])


class Jobs:
    """A queue of jobs run one after the other by one worker thread.

    Example:
        >>> jobs = Jobs()
        >>> job = jobs.submit("sum", lambda progress: sum(range(4)))
        >>> jobs.wait(job.id).result
        6
    """

    def __init__(self):
        self._queue: queue.PriorityQueue = queue.PriorityQueue()  # (0 call | 1 job, order, item)
        self._order = itertools.count()
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._worker = threading.Thread(target=self._work, name="studio-jobs", daemon=True)
        self._worker.start()

    def submit(self, kind: str, work: Callable[[Callable[[str], None]], object],
               then: Callable[[object], None] | None = None) -> Job:
        """Queues ``work(progress)``; ``then(result)`` runs on the worker right after it succeeds."""
        with self._lock:
            job = Job(next(self._ids), kind)
            self._jobs[job.id] = job
        self._queue.put((1, next(self._order), (job, work, then)))
        return job

    def call(self, function: Callable, *args) -> Future:
        """``function(*args)`` on the worker thread, before any queued job (after the running one)."""
        future: Future = Future()
        self._queue.put((0, next(self._order), (future, function, args)))
        return future

    def get(self, job_id: int) -> Job | None:
        return self._jobs.get(job_id)

    def active(self) -> list[Job]:
        """Queued and running jobs, oldest first."""
        return [job for job in self._jobs.values() if job.state in ("queued", "running")]

    def latest(self) -> Job | None:
        return self._jobs[max(self._jobs)] if self._jobs else None

    def wait(self, job_id: int, timeout: float | None = None) -> Job:
        """The job once it is done or failed (for tests and scripts)."""
        with self._done:
            self._done.wait_for(lambda: self._jobs[job_id].state in ("done", "failed"), timeout)
        return self._jobs[job_id]

    def _work(self) -> None:
        while True:
            priority, _, item = self._queue.get()
            if priority == 0:
                future, function, args = item
                try:
                    future.set_result(function(*args))
                except BaseException as error:  # raised again in the caller's thread
                    future.set_exception(error)
                continue
            job, work, then = item
            job.state, job.started = "running", time.perf_counter()
            handler = _Lines(job)
            package = logging.getLogger("keras_transfer")
            package.addHandler(handler)
            try:
                result = work(job.lines.append)
                if then is not None:
                    then(result)
                job.result, job.state = result, "done"
            except KerasTransferError as error:
                job.error, job.state = str(error), "failed"
            except Exception as error:  # the traceback goes to the server log, the page gets one line
                logger.exception("studio job %s failed", job.kind)
                job.error, job.state = f"{type(error).__name__}: {error}", "failed"
            finally:
                package.removeHandler(handler)
                job.ended = time.perf_counter()
                with self._done:
                    self._done.notify_all()
