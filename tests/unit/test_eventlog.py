"""The event log: numbering, one terminal event, waiting with a timeout, wake-ups."""

from __future__ import annotations

import threading
import time

import pytest

from uncut.eventlog import LogClosedError, MemoryEventLog


def test_events_are_numbered_and_read_after_a_sequence_number() -> None:
    log = MemoryEventLog("s")
    for kind in ("start", "token", "token"):
        log.append(kind, {})
    assert [e.seq for e in log.read_after(-1, 0)] == [0, 1, 2]
    assert [e.seq for e in log.read_after(1, 0)] == [2]
    assert log.read_after(2, 0) == []


def test_exactly_one_terminal_event() -> None:
    log = MemoryEventLog("s")
    log.append("start", {})
    assert log.finish("end", {"finish_reason": "stop"}) is True
    assert log.finish("error", {"error": {}}) is False
    with pytest.raises(LogClosedError):
        log.append("token", {"text": "late"})
    assert [e.kind for e in log.read_after(-1, 0)] == ["start", "end"]
    with pytest.raises(ValueError):
        log.finish("token", {})


def test_reader_waits_until_an_event_arrives() -> None:
    log = MemoryEventLog("s")
    threading.Timer(0.1, log.append, args=("token", {"text": "x"})).start()
    started = time.monotonic()
    events = log.read_after(-1, timeout=5)
    assert [e.kind for e in events] == ["token"]
    assert 0.05 < time.monotonic() - started < 4


def test_reader_times_out_with_nothing() -> None:
    log = MemoryEventLog("s")
    started = time.monotonic()
    assert log.read_after(-1, timeout=0.1) == []
    assert time.monotonic() - started >= 0.09


def test_wake_returns_an_empty_list_to_waiting_readers() -> None:
    log = MemoryEventLog("s")
    threading.Timer(0.1, log.wake).start()
    started = time.monotonic()
    assert log.read_after(-1, timeout=None) == []
    assert time.monotonic() - started < 4


GEVENT_READERS = r"""
from gevent import monkey
monkey.patch_all()
import gevent
from uncut.eventlog import MemoryEventLog

# Under gevent the log's lock is the C lock (nothing under it switches) and readers park on hub waiters.
assert type(MemoryEventLog("x")._lock) is type(monkey.get_original("_thread", "RLock")()), type(MemoryEventLog("x")._lock)

def produce(log, n):
    for i in range(n):
        log.append("token", {"text": str(i)})
        gevent.sleep(0.001 * (i % 3))
    log.finish("end", {})

def read(log):
    seen, seq = [], -1
    while True:
        events = log.read_after(seq, 5.0)
        assert events, "a reader timed out"
        seen += [e.data.get("text") for e in events if e.kind == "token"]
        seq = events[-1].seq
        if events[-1].terminal:
            return seen

logs = [MemoryEventLog(f"s{i}") for i in range(200)]
readers = [gevent.spawn(read, log) for log in logs for _ in range(2)]  # two readers per log, as with a resume
gevent.joinall([gevent.spawn(produce, log, 30) for log in logs], timeout=30, raise_error=True)
results = [r.get(timeout=30) for r in readers]
assert all(seen == [str(i) for i in range(30)] for seen in results)
print("ok", len(results))
"""


def test_under_gevent_many_readers_see_every_event_in_order() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", GEVENT_READERS], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok 400"


def test_a_finalizer_that_ends_the_log_inside_an_append_neither_deadlocks_nor_appends_after_the_end() -> None:
    """The lock is re-entrant for what the garbage collector may run inside a section (a dropped relay's finally)."""
    log = MemoryEventLog("s")
    log.append("start", {})
    with log._lock:  # an append in progress...
        assert log.finish("error", {"error": {"type": "cancelled"}}) is True  # ...when a finalizer ends the log
        with pytest.raises(LogClosedError):
            log._append_locked("token", {"text": "late"})
    assert [e.kind for e in log.read_after(-1, 0)] == ["start", "error"]
    assert log.finished and log.last().kind == "error"
