"""The per-stream event log: numbered events that outlive one write.

The producer appends, the response generator reads everything after the
last sequence number it sent, waiting with a timeout so it can heartbeat.
A log holds ``start``, any number of ``token`` events and then exactly one
terminal event (``end`` or ``error``); appending after that is refused, so
"exactly one terminal event" is a property of the log, not of its callers.

A waiting reader parks on a signal of its own (``concurrency.signal_factory``:
a bare waiter on the hub under gevent, a ``threading.Event`` otherwise) that
the next append sets; ``threading.Condition``, and then gevent's Event, did
the same job at several times the cost, paid once per token. Imports nothing
from Flask.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, NamedTuple, Protocol

from uncut.concurrency import Signal, short_lock, signal_factory
from uncut.errors import PRODUCER_LOST as PRODUCER_LOST
from uncut.errors import STORE_UNAVAILABLE as STORE_UNAVAILABLE
from uncut.errors import LogClosedError, StoreUnavailable

__all__ = ["MemoryStore", "StoreUnavailable"]

TERMINAL_KINDS = frozenset({"end", "error"})
_SWEEP_INTERVAL_SECONDS = 1.0


class Event(NamedTuple):
    """One event of a stream; ``seq`` None marks a connection-level event that is not in the log.

    A named tuple rather than a frozen dataclass: one is built per token, and
    a frozen dataclass's ``__init__`` (an ``object.__setattr__`` per field)
    cost several times as much.
    """

    seq: int | None
    kind: str
    data: dict[str, Any]

    @property
    def terminal(self) -> bool:
        return self.kind in TERMINAL_KINDS


def event_size(kind: str, data: dict[str, Any]) -> int:
    """About how many bytes an event holds: its text for a token (the hot path), its JSON otherwise."""
    text = data.get("text") if kind == "token" else None
    if type(text) is str:
        return 24 + (len(text) if text.isascii() else len(text.encode("utf-8", "replace")))
    return 24 + len(json.dumps(data, ensure_ascii=False, default=str).encode("utf-8", "replace"))


class EventLog(Protocol):
    """What the producer and the relay need of a stream's log, wherever it is kept.

    ``owner`` is who may read or cancel it (a key's hash, or None for anyone);
    ``deadline`` is the monotonic time its run must end by, if it has one.
    """

    stream_id: str
    owner: str | None
    deadline: float | None

    @property
    def finished(self) -> bool: ...
    def append(self, kind: str, data: dict[str, Any]) -> Event: ...
    def finish(self, kind: str, data: dict[str, Any]) -> bool: ...
    def wake(self) -> None: ...
    def read_after(self, seq: int, timeout: float | None) -> list[Event]: ...
    def count(self) -> int: ...
    def last(self) -> Event | None: ...


class MemoryEventLog:
    """An in-process event log for one stream."""

    def __init__(self, stream_id: str, owner: str | None = None) -> None:
        self.stream_id = stream_id
        self.owner = owner
        self.deadline: float | None = None  # set by the run that feeds it: its absolute end
        self.bytes = 0  # about how much its events hold (event_size), for the run's and the store's bounds
        self._events: list[Event] = []
        self._lock = self._new_lock()
        self._waiting: list[Signal] = []
        self._new_signal: Callable[[], Signal] = signal_factory()  # decided once: gevent is patched before logs exist
        self._wakeups = 0
        self.finished_at: float | None = None

    @staticmethod
    def _new_lock() -> Any:
        """Nothing under this log's lock blocks, so it can be a cheap C lock (see ``short_lock``)."""
        return short_lock()

    @property
    def finished(self) -> bool:
        return self.finished_at is not None  # set with the terminal event

    def count(self) -> int:
        return len(self._events)

    def last(self) -> Event | None:
        return self._events[-1] if self._events else None

    def append(self, kind: str, data: dict[str, Any]) -> Event:
        """Add the next event and wake every reader."""
        with self._lock:
            return self._append_locked(kind, data)

    def _append_locked(self, kind: str, data: dict[str, Any]) -> Event:
        """``append`` for a caller that holds the lock (subclasses add their storage here)."""
        event = Event(len(self._events), kind, data)
        # Checked after building the event: an allocation can run a finalizer that ends this log
        # (the lock is re-entrant), and from here on nothing allocates until the event is in.
        if self.finished or event.seq != len(self._events):
            raise LogClosedError(f"stream {self.stream_id} already ended")
        if kind in TERMINAL_KINDS:
            self.finished_at = time.monotonic()  # before the append: a lock-free reader that sees the end sees it finished
        self.bytes += event_size(kind, data)
        self._events.append(event)
        self._wake_readers()
        return event

    def _wake_readers(self) -> None:
        """Set every waiting reader's signal (the caller holds the lock)."""
        waiting, self._waiting = self._waiting, []
        for signal in waiting:
            signal.set()

    def finish(self, kind: str, data: dict[str, Any]) -> bool:
        """Append a terminal event unless one is there already; True if this call ended the log."""
        if kind not in TERMINAL_KINDS:
            raise ValueError(f"{kind!r} is not a terminal event")
        with self._lock:
            if self.finished:
                return False
            self._append_locked(kind, data)
            return True

    def wake(self) -> None:
        """Wake readers without an event (a disconnect or a shutdown wants their attention)."""
        with self._lock:
            self._wakeups += 1
            self._wake_readers()

    def read_after(self, seq: int, timeout: float | None) -> list[Event]:
        """Events with a sequence number above ``seq``; waits up to ``timeout`` for one.

        Returns an empty list on timeout or on ``wake()``. ``timeout=None``
        waits until an event or a wake-up.
        """
        events = self._events
        if len(events) > seq + 1:  # the fast path, without the lock: the list only ever grows
            return events[seq + 1 :]
        deadline = None if timeout is None else time.monotonic() + timeout
        wakeups = self._wakeups
        while True:
            with self._lock:
                signal = self._new_signal()  # allocated before the checks, so nothing can slip in after them
                if len(events) > seq + 1:
                    return events[seq + 1 :]
                if self._wakeups != wakeups:
                    return []
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return []
                self._waiting.append(signal)
            if not signal.wait(remaining):
                with self._lock:
                    if signal in self._waiting:
                        self._waiting.remove(signal)


class MemoryStore:
    """In-process event logs: one worker (or sticky sessions) can resume its own streams.

    Logs expire ``ttl_seconds`` after their terminal event; beyond
    ``max_events`` or ``max_bytes`` in total, the oldest finished logs go
    first. Running streams are never evicted: each run bounds its own log
    (``StreamOptions.max_stream_events`` and ``max_stream_bytes``).
    """

    shared = False

    def __init__(self, ttl_seconds: float = 300.0, max_events: int = 500_000, max_bytes: int = 256 * 1_048_576) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._logs: "OrderedDict[str, MemoryEventLog]" = OrderedDict()
        self._names: "OrderedDict[str, str]" = OrderedDict()  # a client's name for its latest stream (a chat id)
        self._lock = threading.Lock()
        self._last_sweep = 0.0

    def _new_log(self, stream_id: str, owner: str | None) -> MemoryEventLog:
        return MemoryEventLog(stream_id, owner)

    def create(self, stream_id: str, owner: str | None = None) -> MemoryEventLog:
        log = self._new_log(stream_id, owner)
        with self._lock:
            self._sweep()
            self._logs[stream_id] = log
        return log

    def open(self, stream_id: str) -> MemoryEventLog | None:
        """The stream's log if this process has it and it has not expired."""
        with self._lock:
            self._sweep()
            return self._logs.get(stream_id)

    def remote_reader(self, stream_id: str) -> bool:
        return False  # nobody outside this process can read a memory log

    def name_stream(self, name: str, stream_id: str) -> None:
        """Point ``name`` at ``stream_id``; a name lives as long as the log it names (bounded like the logs)."""
        with self._lock:
            self._names.pop(name, None)
            self._names[name] = stream_id
            while len(self._names) > max(1024, 2 * len(self._logs)):  # names of expired logs go, oldest first
                self._names.popitem(last=False)

    def named(self, name: str) -> str | None:
        """The stream ``name`` points at, if any."""
        with self._lock:
            return self._names.get(name)

    def forget_name(self, name: str, stream_id: str) -> None:
        """Drop ``name`` if it still points at ``stream_id`` (a newer stream keeps it)."""
        with self._lock:
            if self._names.get(name) == stream_id:
                del self._names[name]

    def running_ids(self) -> list[str]:
        """The streams in this store whose runs have not ended."""
        with self._lock:
            return [stream_id for stream_id, log in self._logs.items() if not log.finished]

    def announce_cancel(self, stream_id: str) -> None:
        """Nobody else to tell: a memory store's runs are all in this process."""

    def watch_cancels(self, on_cancel: Callable[[str], None]) -> None:
        """Nothing to watch: cancels in this process reach its runs directly."""

    def _sweep(self) -> None:
        # A sweep walks every log: at most once a second, not once per stream (it
        # was 11% of a loaded worker's time when it ran on every create).
        now = time.monotonic()
        if now - self._last_sweep < _SWEEP_INTERVAL_SECONDS:
            return
        self._last_sweep = now
        expired = [sid for sid, log in self._logs.items() if log.finished_at is not None and now - log.finished_at > self.ttl_seconds]
        for sid in expired:
            del self._logs[sid]
        events = sum(log.count() for log in self._logs.values())
        size = sum(log.bytes for log in self._logs.values())
        for sid in [sid for sid, log in self._logs.items() if log.finished]:
            if events <= self.max_events and size <= self.max_bytes:
                break
            dropped = self._logs.pop(sid)
            events -= dropped.count()
            size -= dropped.bytes
