"""The event log: numbering, one terminal event, waiting with a timeout, wake-ups."""

from __future__ import annotations

import threading
import time

import pytest

from webapp.eventlog import LogClosedError, MemoryEventLog


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
