"""Adaptive admission (uncut.adaptive, uncut.admission): the limit follows the loop's lag; waits are bounded."""

from __future__ import annotations

import pytest

from uncut.adaptive import ADJUST_EVERY_SECONDS, AdaptiveLimit, LoopLag
from uncut.admission import OVERLOADED, Refusal, StreamLimiter


def test_a_sustained_lag_above_the_target_cuts_the_limit_to_a_share_of_what_runs_but_a_spike_does_not() -> None:
    limit = AdaptiveLimit(target_lag=0.05, initial=200, minimum=8)
    limit.observe(0.2, in_flight=100, now=10.0)  # one step over the target: a spike, perhaps
    assert limit.limit == 200 and limit.lagging
    limit.observe(0.01, in_flight=100, now=10.15)  # and gone
    limit.observe(0.2, in_flight=100, now=10.3)
    assert limit.limit == 200
    limit.observe(0.2, in_flight=100, now=10.45)  # two steps running: overload
    assert limit.limit == pytest.approx(90)
    limit.observe(0.2, in_flight=90, now=10.46)  # too soon: one step per ADJUST_EVERY_SECONDS
    assert limit.limit == pytest.approx(90)
    now = 10.45
    for _ in range(100):
        now += ADJUST_EVERY_SECONDS
        limit.observe(0.2, in_flight=int(limit.limit), now=now)
    assert limit.limit == 8  # never below the floor
    assert AdaptiveLimit().minimum == 64 and AdaptiveLimit(maximum=10).minimum == 10  # the floor, or the ceiling if lower


def test_a_quiet_loop_with_runs_pressing_on_the_limit_lets_it_grow_up_to_the_ceiling() -> None:
    limit = AdaptiveLimit(target_lag=0.05, initial=10, minimum=4, maximum=40)
    now = 0.0
    for _ in range(200):
        now += ADJUST_EVERY_SECONDS
        limit.observe(0.001, in_flight=int(limit.limit), now=now)
    assert limit.limit == 40 and not limit.lagging
    idle = AdaptiveLimit(target_lag=0.05, initial=10, minimum=4)
    idle.observe(0.001, in_flight=1, now=1.0)  # plenty of room: nothing to grow for
    assert idle.limit == 10
    between = AdaptiveLimit(target_lag=0.05, initial=10, minimum=4)
    between.observe(0.04, in_flight=10, now=1.0)  # under the target but not well under: hold
    assert between.limit == 10


def test_the_lag_sample_sees_a_late_wake_up() -> None:
    lag = LoopLag(period=0.001)
    overshoot = lag.sample()
    assert 0 <= overshoot < 0.5 and lag.lag >= 0


def test_without_gevent_the_adaptive_limit_stays_open_and_only_the_ceiling_holds() -> None:
    adaptive = AdaptiveLimit(initial=1, minimum=1)
    limiter = StreamLimiter(3, adaptive=adaptive)
    releases = [limiter.try_acquire() for _ in range(3)]
    assert all(callable(r) for r in releases)  # the adaptive limit of 1 does not apply under threads
    assert limiter.try_acquire() == Refusal(OVERLOADED)


def test_an_adaptive_limit_refuses_beyond_it() -> None:
    adaptive = AdaptiveLimit(initial=2, minimum=1)
    adaptive._started = True  # as if sampling: the limit applies
    limiter = StreamLimiter(0, adaptive=adaptive)
    first, second = limiter.try_acquire(), limiter.try_acquire()
    assert callable(first) and callable(second)
    assert limiter.try_acquire() == Refusal(OVERLOADED)
    adaptive.limit = 3
    assert callable(limiter.try_acquire())
