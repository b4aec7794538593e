"""Internal: tell open streams that the worker is shutting down, before it cuts them.

On SIGTERM or SIGHUP a gunicorn worker stops accepting and gives running
requests ``graceful_timeout`` seconds; then it kills what is left, and
clients see a silent cut. ``watch_gunicorn_worker`` (called from the
``post_worker_init`` hook in conf/gunicorn.conf.py) notices when the worker
stops being alive and records the deadline here. Every relay still running
shortly before that deadline ends its stream with an explicit, retryable
``server_shutdown`` error instead. Streams that finish in time are left alone.
With a shared store a resumable response need not wait for that: its relay
ends the connection at once so the client resumes on another worker, while
the run goes on here until it finishes or the cutoff ends it.

gunicorn's worker waits for its request greenlets only; once readers have
moved elsewhere it would exit at once and take the runs still producing
with it (measured: 18 of 40 resumed answers lost on one SIGTERM, their
readers waiting on a stream nobody produced). ``hold_worker_for_runs``
keeps the worker alive after gunicorn's own drain, telling the master it
is alive, until every run has ended or the cutoff has ended it.
Imports nothing from Flask.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any, Protocol

from uncut.concurrency import spawn
from uncut.errors import SERVER_SHUTDOWN

# How often the worker's liveness is polled (cheap: one attribute read).
_POLL_SECONDS = 0.2

SHUTDOWN_BODY = SERVER_SHUTDOWN  # the older name


class _Wakeable(Protocol):
    def wake(self) -> None: ...


class ShutdownNotice:
    """Process-wide: when the worker will cut open streams, and who to wake then."""

    def __init__(self) -> None:
        self.deadline: float | None = None
        self.margin = 0.0
        self._lock = threading.Lock()
        self._waiters: "weakref.WeakSet[Any]" = weakref.WeakSet()
        self._producers: "weakref.WeakSet[Any]" = weakref.WeakSet()

    def begin(self, graceful_seconds: float) -> None:
        """The worker stopped accepting; it will cut streams ``graceful_seconds`` from now."""
        with self._lock:
            if self.deadline is not None:
                return
            # Send the error comfortably before the cut: a quarter of the drain
            # time, between 1 and 5 seconds.
            self.margin = min(5.0, max(1.0, graceful_seconds / 4))
            self.deadline = time.monotonic() + graceful_seconds
            waiters = list(self._waiters)
        for waiter in waiters:
            waiter.wake()
        spawn(self._end_runs_at_cutoff)

    def _end_runs_at_cutoff(self) -> None:
        """At the cutoff, every run still going in this process ends with ``server_shutdown``."""
        cutoff = self.cutoff
        if cutoff is None:
            return
        time.sleep(max(0.0, cutoff - time.monotonic()))
        with self._lock:
            running = list(self._producers)
        for producer in running:
            producer.cancel(SHUTDOWN_BODY, outcome="server_shutdown")

    def running(self) -> int:
        """Runs still going in this process."""
        with self._lock:
            return len(self._producers)

    def wait_for_runs(self, graceful_seconds: float, keep_alive: Any = None) -> None:
        """Block until every run has ended or the drain deadline has passed (the cutoff ends runs before it)."""
        self.begin(graceful_seconds)  # nothing if the watch has seen the shutdown already
        deadline = self.deadline or time.monotonic()
        while self.running() and time.monotonic() < deadline:
            if keep_alive is not None:
                keep_alive()
            time.sleep(_POLL_SECONDS)

    def register_producer(self, producer: Any) -> None:
        with self._lock:
            self._producers.add(producer)

    def unregister_producer(self, producer: Any) -> None:
        with self._lock:
            self._producers.discard(producer)

    @property
    def cutoff(self) -> float | None:
        """The monotonic time at which streams still open should end with ``server_shutdown``."""
        return None if self.deadline is None else self.deadline - self.margin

    def register(self, waiter: _Wakeable) -> None:
        with self._lock:
            self._waiters.add(waiter)

    def unregister(self, waiter: _Wakeable) -> None:
        with self._lock:
            self._waiters.discard(waiter)


SHUTDOWN = ShutdownNotice()


def _watch(worker: Any, notice: ShutdownNotice) -> None:
    while getattr(worker, "alive", False):
        time.sleep(_POLL_SECONDS)
    notice.begin(float(worker.cfg.graceful_timeout))


def watch_gunicorn_worker(worker: Any, notice: ShutdownNotice = SHUTDOWN) -> None:
    """Start watching a gunicorn worker (call from ``post_worker_init``); returns at once."""
    spawn(_watch, worker, notice)


def hold_worker_for_runs(worker: Any, notice: ShutdownNotice = SHUTDOWN) -> None:
    """Make a gunicorn worker, once it has drained its requests, stay alive for its runs (call from ``post_worker_init``).

    gunicorn calls ``worker.run()`` right after ``post_worker_init`` and
    exits the worker when it returns; this wraps it. ``worker.notify()``
    keeps the master from taking the waiting worker for a hung one.
    """
    drain_requests = worker.run

    def run_then_hold() -> None:
        drain_requests()
        notice.wait_for_runs(float(worker.cfg.graceful_timeout), keep_alive=worker.notify)

    worker.run = run_then_hold
