"""Internal: adaptive admission: how many runs a gevent worker takes follows how late its event loop runs.

One event loop serves every stream of a gevent worker. Past its capacity
nothing fails: everything waits, first come first served, new connections
behind the backlog of running ones, and a browser sees nothing for seconds.
The loop's lag (how late a timer fires) is the direct measure of that: a
sampler greenlet sleeps ``period`` and records the overshoot.

``AdaptiveLimit`` turns the lag into a concurrency limit, AIMD as in
Netflix's concurrency-limits or Envoy's adaptive concurrency filter: while
the smoothed lag is above ``target``, the limit drops to 90 % of the runs
in flight (at most every 100 ms); while it is under half the target and
runs press against the limit, the limit grows by 5 % (every 100 ms). Runs
beyond the limit are refused at once (``503``), so requests get their
first bytes quickly, served or refused, and the admitted ones keep their
pace. ``lagging`` says whether the smoothed lag is over the target now.

Without gevent (threads, the Flask dev server) there is no one loop to
measure: the limit stays open and only the fixed ceiling applies.
"""

from __future__ import annotations

import math
import time
from typing import Callable

from uncut.concurrency import spawn, under_gevent

DECREASE = 0.9  # multiplicative decrease: a share of the runs in flight
SUSTAINED_STEPS = 2  # the lag must stay above the target this many steps running before the limit falls
FLOOR = 64  # the limit never falls below this (or below the fixed ceiling): any worker streams that many
INCREASE = 0.05  # additive-ish increase: a share of the limit
ADJUST_EVERY_SECONDS = 0.1
SMOOTHING = 0.3  # weight of the newest lag sample in the moving average


class LoopLag:
    """How late the event loop runs: a moving average of a sleeping greenlet's overshoot, in seconds."""

    def __init__(self, period: float = 0.02) -> None:
        self.period = period
        self.lag = 0.0

    def sample(self) -> float:
        """Sleep one period and fold its overshoot into the average; returns the newest overshoot.

        The overshoot has two parts: how late the timer fired, and how long
        a callback then waits in the hub's queue (``sleep(0)`` is one). A
        greenlet woken by another (a spawned request handler, a reader told
        of a new event) waits in that queue, which gevent works through for
        a few milliseconds per loop turn: under load it can hold seconds
        while timers still fire on time.
        """
        before = time.monotonic()
        time.sleep(self.period)  # looked up now: gevent's, once it has patched time
        time.sleep(0)
        overshoot = max(0.0, time.monotonic() - before - self.period)
        self.lag += SMOOTHING * (overshoot - self.lag)
        return overshoot


class AdaptiveLimit:
    """A concurrency limit driven by loop lag; ``limit`` is read on every admission."""

    def __init__(self, target_lag: float = 0.1, initial: int = 128, minimum: int = FLOOR, maximum: int = 0) -> None:
        if target_lag <= 0:
            raise ValueError("target_lag must be positive")
        self.target_lag = target_lag
        self.maximum = maximum or math.inf  # the fixed ceiling, if any
        self.minimum = min(minimum, self.maximum)
        self.limit: float = min(initial, self.maximum)
        self._lagging_steps = 0
        self.lagging = False
        self.loop = LoopLag()
        self._adjusted_at = 0.0
        self._started = False

    def start(self, in_flight: Callable[[], int]) -> None:
        """Start sampling (once, and only under gevent: elsewhere the limit stays open).

        ``in_flight`` says how many runs the owner holds now.
        """
        if self._started:
            return
        self._started = True
        if not under_gevent():
            self.limit = self.maximum
            return
        spawn(self._run, in_flight)

    def _run(self, in_flight: Callable[[], int]) -> None:
        while True:  # the worker's lifetime: a greenlet that sleeps between samples
            self.loop.sample()
            self.observe(self.loop.lag, in_flight())

    def observe(self, lag: float, in_flight: int, now: float | None = None) -> None:
        """One control step: the smoothed lag and the runs in flight move the limit."""
        now = time.monotonic() if now is None else now
        self.lagging = lag > self.target_lag
        if now - self._adjusted_at < ADJUST_EVERY_SECONDS:
            return
        self._adjusted_at = now
        self._lagging_steps = self._lagging_steps + 1 if self.lagging else 0
        if self._lagging_steps >= SUSTAINED_STEPS:  # a sustained lag, not a spike (a cold start, a collection)
            self.limit = max(self.minimum, min(self.limit, in_flight) * DECREASE)
        elif lag < self.target_lag / 2 and in_flight >= self.limit * 0.9:
            self.limit = min(self.maximum, self.limit + max(1.0, self.limit * INCREASE))
