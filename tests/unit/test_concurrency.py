"""The client-socket check behind the disconnect watch, the signal readers park on, and the short lock.

The gevent hub works without monkey-patching, which these tests do not need.
"""

from __future__ import annotations

import socket

import gevent

from uncut.concurrency import _GeventSignal, _peer_closed, short_lock


def test_a_socket_with_nothing_to_read_is_not_a_client_that_left() -> None:
    left, right = socket.socketpair()
    try:
        left.settimeout(0.05)  # a spurious wake-up: the peek times out, the client is still there
        assert _peer_closed(left) is False
        right.close()
        assert _peer_closed(left) is True
    finally:
        left.close()


# -- the gevent signal the event log's readers park on ----------------------


def test_a_signal_set_before_the_wait_returns_at_once() -> None:
    signal = _GeventSignal()
    signal.set()
    assert signal.is_set() and signal.wait(5.0) is True


def test_a_signal_wait_times_out_when_nobody_sets_it() -> None:
    signal = _GeventSignal()
    started = gevent.get_hub().loop.now()
    assert gevent.spawn(signal.wait, 0.05).get(timeout=5) is False
    assert gevent.get_hub().loop.now() - started >= 0.04


def test_a_set_from_another_greenlet_wakes_the_waiter_before_its_timeout() -> None:
    signal = _GeventSignal()
    waiter = gevent.spawn(signal.wait, 5.0)
    gevent.sleep(0.01)  # the waiter is parked
    signal.set()
    assert waiter.get(timeout=1) is True


def test_a_set_after_the_waiter_was_killed_or_timed_out_is_harmless() -> None:
    killed, timed_out = _GeventSignal(), _GeventSignal()
    waiter = gevent.spawn(killed.wait, 5.0)
    gevent.sleep(0.01)
    waiter.kill()
    assert gevent.spawn(timed_out.wait, 0.01).get(timeout=1) is False
    killed.set()
    timed_out.set()
    gevent.sleep(0.01)  # the scheduled wake-ups run and find nobody
    assert killed.is_set() and timed_out.wait(0) is True


def test_a_short_lock_can_be_taken_again_by_its_holder() -> None:
    """A finalizer that runs inside the section and takes the lock again must not deadlock the worker."""
    lock = short_lock()
    with lock:
        assert lock.acquire(timeout=1)
        lock.release()
