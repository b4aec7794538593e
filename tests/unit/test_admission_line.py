"""The line past a worker's limit: who waits, who is refused, when they are told to come back, and who goes first.

A fake clock drives the schedule; waits are real (threads), and short.
"""

from __future__ import annotations

import random
import threading
import time

import pytest

from uncut.admission import CLIENT_LIMIT, MAX_RETRY_AFTER_SECONDS, OVERLOADED, PROMISE_GRACE_SECONDS, Refusal, StreamLimiter, retry_signal


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def limiter(limit: int = 1, budget: float = 1.0, *, clock: Clock | None = None, seed: int = 1, **kwargs: object) -> StreamLimiter:
    """A limiter whose runs have been measured at 1 s each."""
    line = StreamLimiter(limit, start_budget=budget, clock=clock or Clock(), rng=random.Random(seed), **kwargs)  # type: ignore[arg-type]
    line.mean_run_seconds = 1.0
    return line


def in_line(line: StreamLimiter, client: str | None = None, retrying: bool | None = None) -> tuple[threading.Thread, list]:
    """A request that waits its turn on a thread; the list gets what it was given."""
    got: list = []
    thread = threading.Thread(target=lambda: got.append(line.try_acquire(client, retrying)), daemon=True)
    thread.start()
    deadline = time.monotonic() + 2
    while line.waiting == 0 and not got and time.monotonic() < deadline:
        time.sleep(0.005)
    return thread, got


def test_past_the_limit_a_run_expected_to_start_within_the_budget_waits_and_gets_the_next_free_slot() -> None:
    line = limiter(limit=1, budget=1.0)  # one slot, runs of 1 s: one start per second
    held = line.try_acquire()
    assert callable(held)
    thread, got = in_line(line)
    assert line.waiting == 1 and not got  # waiting, not refused
    held()
    thread.join(2)
    assert callable(got[0]) and line.active == 1 and line.waiting == 0
    got[0]()
    assert line.active == 0


def test_beyond_the_budget_a_refusal_names_a_retry_after_that_grows_with_the_line_and_is_spread() -> None:
    line = limiter(limit=1, budget=1.0)
    line.try_acquire()
    in_line(line)  # the one place within the budget
    refusals = [line.try_acquire() for _ in range(5)]
    assert all(isinstance(r, Refusal) and r.reason == OVERLOADED for r in refusals)
    waits = [r.retry_after for r in refusals]
    # each comes one drain interval (1 s) after the one before, plus a jitter within that interval
    assert all(1.0 + i <= wait < 2.0 + i for i, wait in enumerate(waits, start=1)), waits
    other = limiter(limit=1, budget=1.0, seed=2)
    other.try_acquire()
    in_line(other)
    assert [other.try_acquire().retry_after for _ in range(5)] != waits  # jittered: another draw, other times
    headers = dict(refusals[0].headers())
    assert headers["Retry-After"] == "3" and 2000 <= int(headers["retry-after-ms"]) < 3000 and headers["x-should-retry"] == "true"


def test_the_drain_rate_follows_measured_run_lengths() -> None:
    clock = Clock()
    line = limiter(limit=2, budget=0.5, clock=clock)
    line.mean_run_seconds = None
    for _ in range(2):
        first, second = line.try_acquire(), line.try_acquire()
        clock.now += 4.0  # runs of 4 s
        first(), second()
    assert line.mean_run_seconds == pytest.approx(4.0)
    line.try_acquire(), line.try_acquire()
    refused = line.try_acquire()
    assert isinstance(refused, Refusal)
    assert 2.0 <= refused.retry_after < 4.0  # two slots freed per 4 s: the next start is 2 s off, spread over 2 s


def test_a_refused_client_that_comes_back_on_time_goes_ahead_of_first_time_clients() -> None:
    clock = Clock()
    line = limiter(limit=1, budget=1.0, clock=clock)
    held = line.try_acquire("a")
    b_waits, b_got = in_line(line, "b")  # within the budget: waits
    promised = line.try_acquire("c")
    assert isinstance(promised, Refusal)
    newcomer = line.try_acquire("d", retrying=False)
    assert isinstance(newcomer, Refusal) and newcomer.retry_after > promised.retry_after  # behind the promise
    clock.now += promised.retry_after
    # A first attempt from c's address is not c coming back: it takes no promised place.
    assert isinstance(line.try_acquire("c", retrying=False), Refusal)
    returning, got = in_line(line, "c", retrying=True)
    assert line.waiting == 2 and not got  # c waits: its place was kept, however long the line
    late = line.try_acquire("e", retrying=False)  # a first-time client now: behind d's promise, so beyond the budget
    assert isinstance(late, Refusal) and late.retry_after > newcomer.retry_after - promised.retry_after
    held()  # one slot frees: b was due first
    b_waits.join(2)
    assert callable(b_got[0]) and not got
    b_got[0]()  # b's run ends
    returning.join(2)
    assert callable(got[0])  # then c, ahead of anyone who came for the first time


def test_a_promise_lapses_when_its_client_does_not_come_back() -> None:
    clock = Clock()
    line = limiter(limit=1, budget=0.5, clock=clock)
    line.try_acquire("a")
    promised = line.try_acquire("c")
    assert isinstance(promised, Refusal)
    clock.now += promised.retry_after + PROMISE_GRACE_SECONDS + 0.1
    assert isinstance(line.try_acquire("c", retrying=True), Refusal)  # too late: refused again, with a new place
    assert line.waiting == 0


def test_no_promise_is_made_further_off_than_any_client_waits() -> None:
    line = limiter(limit=1, budget=0.1)
    line.try_acquire()
    waits = [line.try_acquire().retry_after for _ in range(80)]  # one start per second: the 61st is past the horizon
    assert max(waits) == MAX_RETRY_AFTER_SECONDS and waits[-1] == MAX_RETRY_AFTER_SECONDS


def test_a_client_share_counts_its_places_in_line_too() -> None:
    line = limiter(limit=1, budget=1.0, per_client=1)
    assert callable(line.try_acquire("a"))
    _, got = in_line(line, "b")
    refused = line.try_acquire("b")
    assert isinstance(refused, Refusal) and refused.reason == CLIENT_LIMIT and refused.status == 429
    assert 0.5 <= refused.retry_after <= 1.0  # about half a run


def test_without_a_budget_a_full_worker_refuses_at_once_with_the_fixed_retry_after() -> None:
    line = StreamLimiter(1, retry_after=3.0)
    line.try_acquire()
    started = time.monotonic()
    refused = line.try_acquire()
    assert refused == Refusal(OVERLOADED, 3.0) and time.monotonic() - started < 0.05


@pytest.mark.parametrize(
    "header, expected", [(None, None), ("0", 0), ("1", 1), ("2", 2), (" 2 ", 2), ("x", None), ("-1", None), ("99999", None)]
)
def test_a_request_says_how_many_retries_came_before_it_as_the_openai_sdks_do(header: str | None, expected: int | None) -> None:
    environ = {} if header is None else {"HTTP_X_STAINLESS_RETRY_COUNT": header}
    assert retry_signal(environ) == expected


def test_a_last_attempt_back_for_its_place_waits_longer_in_line_than_an_earlier_one() -> None:
    from uncut.admission import LAST_CHANCE_RETRIES, LAST_CHANCE_WAIT_SECONDS

    clock = Clock()
    line = limiter(limit=1, budget=0.1, clock=clock)
    line.try_acquire("a")  # holds the one slot; none frees
    waited = {}
    for retries in (1, LAST_CHANCE_RETRIES):
        promised = line.try_acquire(f"c{retries}")
        assert isinstance(promised, Refusal)
        clock.now += promised.retry_after  # back on time for the kept place
        started = time.monotonic()
        thread, got = in_line(line, f"c{retries}", retrying=retries)
        thread.join(5)
        waited[retries] = time.monotonic() - started
        assert isinstance(got[0], Refusal)  # no slot freed: refused in the end, with a new place
    assert waited[1] < 0.1 + 0.3 and LAST_CHANCE_WAIT_SECONDS - 0.05 < waited[LAST_CHANCE_RETRIES] < LAST_CHANCE_WAIT_SECONDS + 0.5, waited


def test_a_last_attempt_without_a_kept_place_is_refused_at_once_as_any() -> None:
    # Waiting longer only for a place kept for it: a longer wait for every last attempt crowded the loop
    # under a sustained 4x overload (86 % answered against 98.8 %).
    line = limiter(limit=1, budget=0.1)
    line.try_acquire("a")
    started = time.monotonic()
    assert isinstance(line.try_acquire("b", retrying=5), Refusal)
    assert time.monotonic() - started < 0.05
