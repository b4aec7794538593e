"""Internal: admission: how many runs a worker process takes, how many per client, and what everyone else is told.

A slot belongs to a run, not to a connection: it is taken when the run is
created and given back when the run ends, however many times its readers
leave and come back. Past the worker's limit (a fixed ceiling, and under
gevent the ``AdaptiveLimit`` of uncut.adaptive, which follows the event
loop's lag), a new run is not refused out of hand:

- **It waits its turn** when it is expected to start within
  ``start_budget`` seconds. The wait is estimated from measured throughput:
  slots free up at ``limit / mean run length`` per second (Little's law),
  so the n-th in line starts after about ``n`` of those. Runs already
  streaming keep their pace: the line only moves when one of them ends.
- **Beyond the budget it is refused** (``503 overloaded``) with a
  ``Retry-After`` that says when its turn will come: each refused client is
  given the next free place in the schedule, one drain interval after the
  last, plus a jitter within that interval, so retries come back spread out
  at the rate the worker frees slots, not together. The place is kept for
  it (a *promise*): when the same client comes back around then, it goes to
  the head of the line, ahead of clients arriving for the first time, which
  queue behind every promise. A client that never comes back loses its
  place after ``PROMISE_GRACE_SECONDS``.
- **A client's last attempt waits longer for its place.** The openai SDKs
  retry a 503 twice by default (``x-stainless-retry-count`` says which
  attempt this is): refusing the second retry is an error for its user.
  So when it comes back for its kept place, it waits in line up to
  ``LAST_CHANCE_WAIT_SECONDS`` instead of one budget. Measured
  (bench/OPENLOOP.md, one worker, clients retrying as the SDK does): a
  burst of 1000 went from 937 answered to all; at 4x capacity 97.8 % to
  98.8 % answered, admitted TTFT p99 unchanged (0.93 s). Tried and
  dropped: 1.5 s (4x: 99.4 %, but TTFT p99 1.43 s); the longer wait for
  every last attempt, kept place or not (4x: 86 % answered: the waiting
  crowds the loop); a missed place re-promised near the front instead of
  at the back (a burst of 1000: 710 answered: those places were never
  reserved, so they collided with the ones promised for that time).
- **Per client**, ``per_client`` bounds runs and places in line together:
  beyond it, ``429`` with a ``Retry-After`` of about half a run.

``start_budget=0`` turns the line and the schedule off: refused at once,
with the fixed ``retry_after`` (the behaviour before the line existed, kept
as the negative control). Resume readers have a limiter of their own
(``READER_LIMIT``, no line): a reader holds a connection, not a run.
Imports nothing from a web framework.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from uncut.adaptive import AdaptiveLimit
from uncut.errors import CLIENT_LIMIT, OVERLOADED, READER_LIMIT

_MESSAGES = {
    OVERLOADED: "Too many open streams on this server; retry after the time Retry-After gives.",
    CLIENT_LIMIT: "You have as many open streams as one client may; wait for one to end.",
    READER_LIMIT: "You have as many readers open on resumed streams as one client may; close one first.",
}

MAX_RETRY_AFTER_SECONDS = 60.0  # the openai SDK ignores a longer Retry-After (and falls back to its own short backoff)
PROMISE_EARLY_SECONDS = 0.25  # a client may come back this much before its place and still have it
PROMISE_GRACE_SECONDS = 3.0  # ...or this much after: a client that reads only whole seconds of Retry-After is up to 1 s late
COLD_RUN_SECONDS = 2.0
RUN_LENGTH_SMOOTHING = 0.1  # weight of the newest run in the moving average of run lengths
MAX_WAIT_BUDGETS = 1  # a request in line is refused after one budget (250 ms by default): a longer line only made TTFT later
LAST_CHANCE_RETRIES = 2  # the openai SDKs' default max_retries: an attempt with this many retries before it is its client's last
LAST_CHANCE_WAIT_SECONDS = 0.75  # how long a last attempt, back for its kept place, waits in line (measured: see above)
SWEEP_EVERY = 256  # promises made between two sweeps of clients whose promises have all lapsed


@dataclass(frozen=True)
class Refusal:
    """Why a run (or reader) was not admitted, and when to come back (seconds)."""

    reason: str  # OVERLOADED, CLIENT_LIMIT or READER_LIMIT
    retry_after: float = 1.0

    @property
    def status(self) -> int:
        return 503 if self.reason == OVERLOADED else 429

    @property
    def message(self) -> str:
        return _MESSAGES[self.reason]

    def headers(self) -> list[tuple[str, str]]:
        """``Retry-After`` in whole seconds (HTTP's); ``retry-after-ms``, which the openai SDKs read first;
        ``x-should-retry``, which tells them a retry is welcome."""
        return [
            ("Retry-After", str(max(1, math.ceil(self.retry_after)))),
            ("retry-after-ms", str(max(1, round(self.retry_after * 1000)))),
            ("x-should-retry", "true"),
        ]

    def body(self, openai_shape: bool = False) -> bytes:
        """The JSON error body; OpenAI's shape (``message, type, param, code``) for the /v1 surfaces."""
        if openai_shape:
            error: dict[str, Any] = {"message": self.message, "type": self.reason, "param": None, "code": self.reason}
        else:
            error = {"type": self.reason, "message": self.message}
        return json.dumps({"error": error}).encode()


def retry_signal(environ: Mapping[str, Any]) -> int | None:
    """How many retries a request says came before it: the openai SDKs send ``x-stainless-retry-count`` (0 on a first attempt)."""
    raw = environ.get("HTTP_X_STAINLESS_RETRY_COUNT")
    if raw is None:
        return None
    try:
        count = int(str(raw).strip())
    except ValueError:
        return None
    return count if 0 <= count <= 1000 else None


@dataclass(order=True)
class _Waiter:
    """One request in line: ordered by the time its turn is due, then by arrival."""

    due: float
    seq: int
    client: str | None = field(compare=False)
    patience: float = field(default=0.0, compare=False)  # how long it waits for its turn
    granted: bool = field(default=False, compare=False)
    gone: bool = field(default=False, compare=False)
    release: Callable[[], None] | None = field(default=None, compare=False)
    event: threading.Event = field(default_factory=lambda: threading.Event(), compare=False)


class StreamLimiter:
    """Counts running runs, in all and per client, keeps the line and the promises; 0 for a limit admits all it would bound.

    ``retrying`` (to ``try_acquire``) is what the request says of itself:
    how many retries came before it (the openai SDKs send
    ``x-stainless-retry-count``, 0 on a first attempt), or None when it
    does not say; True and False mean 1 and 0. Only a request that may be a
    retry can take a promised place.
    """

    def __init__(
        self,
        limit: int,
        per_client: int = 0,
        *,
        adaptive: AdaptiveLimit | None = None,
        start_budget: float = 0.0,
        retry_after: float = 1.0,
        client_reason: str = CLIENT_LIMIT,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 0 or per_client < 0 or start_budget < 0 or retry_after <= 0:
            raise ValueError("limits must be 0 (no limit) or more, the budget not negative, and retry_after positive")
        self.limit = limit
        self.per_client = per_client
        self.adaptive = adaptive
        self.start_budget = start_budget
        self.retry_after = retry_after
        self.client_reason = client_reason
        self.active = 0
        self.mean_run_seconds: float | None = None
        self._rng = rng or random.Random()
        self._clock = clock
        self._held: dict[str, int] = {}  # per client: runs and places in line
        self._line: list[_Waiter] = []  # a heap by due time
        self._waiting = 0  # live waiters in the heap (gone ones are dropped when they reach the top)
        self._seq = itertools.count()
        self._promises: dict[str, list[float]] = {}  # per client: a heap of when each promised place is due
        self._promised_until = 0.0  # the last promised place: first-time clients queue behind it
        self._made = 0
        self._running: dict[int, float] = {}  # until a run has ended: when each running one started, by slot number
        self._slots = itertools.count()
        self._lock = threading.Lock()

    # -- what a request gets ------------------------------------------------------------

    def try_acquire(self, client: str | None = None, retrying: int | None = None) -> Callable[[], None] | Refusal:
        """A release function for an admitted run (safe to call twice), or the Refusal; may wait its turn first."""
        if self.adaptive is not None:
            self.adaptive.start(lambda: self.active)
        with self._lock:
            now = self._clock()
            if client is not None and self.per_client and self._held.get(client, 0) >= self.per_client:
                return Refusal(self.client_reason, self._client_retry_after())
            if self._free() and not self._waiting:
                return self._admit(client, now)
            if not self.start_budget:
                return Refusal(OVERLOADED, self.retry_after)
            waiter = self._place(client, retrying, now)
            if isinstance(waiter, Refusal):
                return waiter
        return self._wait(waiter)

    def held_by(self, client: str) -> int:
        with self._lock:
            return self._held.get(client, 0)

    @property
    def waiting(self) -> int:
        """Requests in line now."""
        return self._waiting

    def drain_seconds(self) -> float:
        """How long the line and every promised place take to start, from now: 0 when a new run starts at once."""
        with self._lock:
            now = self._clock()
            if self._free() and not self._waiting:
                return 0.0
            return max(0.0, self._back_of_line(now) - now)

    # -- inside the lock ----------------------------------------------------------------

    def _effective_limit(self) -> float:
        limit: float = self.limit or math.inf
        if self.adaptive is not None:
            limit = min(limit, self.adaptive.limit)
        return limit

    def _free(self) -> bool:
        return self.active < self._effective_limit()

    def _drain_rate(self) -> float:
        """Slots freed per second: the limit over the mean run length (Little's law)."""
        slots = self._effective_limit()
        if math.isinf(slots):
            slots = max(1, self.active)
        return max(1e-3, slots / self._run_seconds())

    def _run_seconds(self) -> float:
        """The mean run length; before any run has ended, at least as long as the oldest running one has lasted."""
        if self.mean_run_seconds is not None:
            return self.mean_run_seconds
        oldest = min(self._running.values(), default=None)
        return max(COLD_RUN_SECONDS, 0.0 if oldest is None else self._clock() - oldest)

    def _back_of_line(self, now: float) -> float:
        """When a first-time client's turn would come: behind everyone in line and every promised place."""
        return max(now + self._waiting / self._drain_rate(), self._promised_until)

    def _client_retry_after(self) -> float:
        return max(0.5, self._run_seconds() * self._rng.uniform(0.5, 1.0))

    def _admit(self, client: str | None, now: float) -> Callable[[], None]:
        self.active += 1
        if client is not None:
            self._held[client] = self._held.get(client, 0) + 1
        return self._release_for(client, now)

    def _place(self, client: str | None, retrying: int | None, now: float) -> _Waiter | Refusal:
        """A place in line (a kept promise goes first), or a refusal with a promise for later."""
        due = self._take_promise(client, now) if retrying != 0 else None
        promised = due is not None
        if due is None:
            interval = 1 / self._drain_rate()
            due = self._back_of_line(now) + interval
            if due - now > self.start_budget:
                return self._promise(client, now, due, interval)
        last_chance = promised and retrying is not None and retrying >= LAST_CHANCE_RETRIES
        patience = max(MAX_WAIT_BUDGETS * self.start_budget, LAST_CHANCE_WAIT_SECONDS if last_chance else 0.0)
        waiter = _Waiter(due, next(self._seq), client, patience)
        heapq.heappush(self._line, waiter)
        self._waiting += 1
        if client is not None:
            self._held[client] = self._held.get(client, 0) + 1
        return waiter

    def _promise(self, client: str | None, now: float, due: float, interval: float) -> Refusal:
        """Refuse, naming the time of the place kept for this client (spread within one drain interval)."""
        come_back = due + self._rng.uniform(0, interval)
        retry_after = come_back - now
        if retry_after > MAX_RETRY_AFTER_SECONDS:  # further than any SDK waits: promise nothing
            return Refusal(OVERLOADED, MAX_RETRY_AFTER_SECONDS)
        heapq.heappush(self._promises.setdefault(client or "", []), come_back)
        self._promised_until = max(self._promised_until, due)
        self._made += 1
        if self._made % SWEEP_EVERY == 0:
            self._sweep(now)
        return Refusal(OVERLOADED, retry_after)

    def _take_promise(self, client: str | None, now: float) -> float | None:
        """The due time of this client's promise if one is due now (lapsed ones are dropped on the way)."""
        promises = self._promises.get(client or "")
        if not promises:
            return None
        while promises and promises[0] < now - PROMISE_GRACE_SECONDS:
            heapq.heappop(promises)
        if promises and promises[0] <= now + PROMISE_EARLY_SECONDS:
            return heapq.heappop(promises)
        return None

    def _sweep(self, now: float) -> None:
        for key in [key for key, promises in self._promises.items() if not promises or max(promises) < now - PROMISE_GRACE_SECONDS]:
            del self._promises[key]

    def _grant_waiting(self, now: float) -> None:
        """Hand free slots to the head of the line."""
        while self._waiting and self._free():
            waiter = heapq.heappop(self._line)
            if waiter.gone:
                continue
            self._waiting -= 1
            self.active += 1
            waiter.granted = True
            waiter.release = self._release_for(waiter.client, now)
            waiter.event.set()

    def _release_for(self, client: str | None, started: float) -> Callable[[], None]:
        released = False
        slot = next(self._slots)
        if self.mean_run_seconds is None:
            self._running[slot] = started

        def release() -> None:
            nonlocal released
            with self._lock:
                if released:
                    return
                released = True
                now = self._clock()
                length = now - started
                mean = self.mean_run_seconds
                self.mean_run_seconds = length if mean is None else mean + RUN_LENGTH_SMOOTHING * (length - mean)
                self._running.clear()  # measured from now on
                self.active -= 1
                self._drop_held(client)
                self._grant_waiting(now)

        return release

    def _drop_held(self, client: str | None) -> None:
        if client is None:
            return
        left = self._held[client] - 1
        if left:
            self._held[client] = left
        else:
            del self._held[client]

    # -- outside the lock ---------------------------------------------------------------

    def _wait(self, waiter: _Waiter) -> Callable[[], None] | Refusal:
        """Wait for the turn; past the budget (the estimate was wrong), a refusal with a new promise.

        Bounded well under a proxy's time to try another server (nginx's
        ``proxy_next_upstream_timeout 2s`` in conf/nginx.conf).
        """
        waiter.event.wait(waiter.patience)
        with self._lock:
            if waiter.granted:
                assert waiter.release is not None
                return waiter.release
            waiter.gone = True
            self._waiting -= 1
            self._drop_held(waiter.client)
            now = self._clock()
            interval = 1 / self._drain_rate()
            return self._promise(waiter.client, now, self._back_of_line(now) + interval, interval)
