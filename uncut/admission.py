"""Admission: at most N runs per worker process, at most M per client, and an immediate no beyond.

A slot belongs to a run, not to a connection: it is taken when the run is
created and given back when the run ends, however many times its readers
leave and come back, so a client that opens a stream and drops it still
holds the slot while the run goes on (the resume grace). A worker that
accepts every run slows them all down and bills upstream calls nobody
may read; a client told ``503`` (the worker is full) or ``429`` (this
client has its share) with ``Retry-After`` at once can go elsewhere or come
back. Past its fixed limit a worker may also take fewer: an
``AdaptiveLimit`` (uncut.adaptive) lowers the limit while the event loop
lags, and a request may wait ``wait_seconds`` for a slot before it is
refused. Resume readers have a limiter of their own (``READER_LIMIT``):
a reader holds a connection, not a run, but a client with many of them
holds the worker's connections all the same. Imports nothing from Flask.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

from uncut.adaptive import AdaptiveLimit

OVERLOADED = "overloaded"  # the worker is full: 503, retry elsewhere
CLIENT_LIMIT = "too_many_streams"  # this client holds its share: 429
READER_LIMIT = "too_many_readers"  # this client holds its share of resume readers: 429
_MESSAGES = {
    OVERLOADED: "Too many open streams on this server; retry shortly.",
    CLIENT_LIMIT: "You have as many open streams as one client may; wait for one to end.",
    READER_LIMIT: "You have as many readers open on resumed streams as one client may; close one first.",
}


@dataclass(frozen=True)
class Refusal:
    """Why a run was not admitted."""

    reason: str  # OVERLOADED, CLIENT_LIMIT or READER_LIMIT

    @property
    def status(self) -> int:
        return 503 if self.reason == OVERLOADED else 429

    @property
    def message(self) -> str:
        return _MESSAGES[self.reason]


class StreamLimiter:
    """Counts running runs, in all and per client; 0 for either limit admits everything it would bound.

    With ``adaptive``, the worker's limit is also the adaptive one (never
    above ``limit``); a request over it waits up to ``wait_seconds`` for a
    run to end before it is refused. ``client_reason`` names a client's
    refusal (``READER_LIMIT`` for the readers' limiter).
    """

    def __init__(
        self, limit: int, per_client: int = 0, *, adaptive: AdaptiveLimit | None = None, wait_seconds: float = 0.0,
        client_reason: str = CLIENT_LIMIT,
    ) -> None:
        if limit < 0 or per_client < 0 or wait_seconds < 0:
            raise ValueError("limits must be 0 (no limit) or more, and the wait not negative")
        self.limit = limit
        self.per_client = per_client
        self.adaptive = adaptive
        self.wait_seconds = wait_seconds
        self.client_reason = client_reason
        self.active = 0
        self._by_client: dict[str, int] = {}
        self._lock = threading.Lock()
        self._freed = threading.Condition(self._lock)

    def _refusal(self, client: str | None) -> Refusal | None:
        if (self.limit and self.active >= self.limit) or (self.adaptive is not None and self.active >= self.adaptive.limit):
            return Refusal(OVERLOADED)
        if client is not None and self.per_client and self._by_client.get(client, 0) >= self.per_client:
            return Refusal(self.client_reason)
        return None

    def try_acquire(self, client: str | None = None) -> Callable[[], None] | Refusal:
        """A release function for an admitted run (safe to call twice), or the Refusal."""
        if self.adaptive is not None:
            self.adaptive.start(lambda: self.active)
        deadline = None
        with self._lock:
            while True:
                refusal = self._refusal(client)
                if refusal is None:
                    break
                if refusal.reason != OVERLOADED or not self.wait_seconds:
                    return refusal
                now = time.monotonic()
                deadline = deadline or now + self.wait_seconds
                if now >= deadline:
                    return refusal
                self._freed.wait(deadline - now)  # a run that ends wakes one waiter
            self.active += 1
            if client is not None:
                self._by_client[client] = self._by_client.get(client, 0) + 1
        released = threading.Event()

        def release() -> None:
            with self._lock:
                if released.is_set():
                    return
                released.set()
                self.active -= 1
                if client is not None:
                    left = self._by_client[client] - 1
                    if left:
                        self._by_client[client] = left
                    else:
                        del self._by_client[client]
                self._freed.notify()

        return release

    def held_by(self, client: str) -> int:
        with self._lock:
            return self._by_client.get(client, 0)
