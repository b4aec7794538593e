"""The per-stream event log: numbered events that outlive one write.

The producer appends, the response generator reads everything after the
last sequence number it sent, waiting with a timeout so it can heartbeat.
A log holds ``start``, any number of ``token`` events and then exactly one
terminal event (``end`` or ``error``); appending after that is refused, so
"exactly one terminal event" is a property of the log, not of its callers.

Waiting uses ``threading.Condition``; under gunicorn's gevent worker the
threading module is monkey-patched, so the same code waits cooperatively.
Imports nothing from Flask.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

TERMINAL_KINDS = frozenset({"end", "error"})


@dataclass(frozen=True)
class Event:
    """One numbered event of a stream."""

    seq: int
    kind: str
    data: dict[str, Any]

    @property
    def terminal(self) -> bool:
        return self.kind in TERMINAL_KINDS


class LogClosedError(RuntimeError):
    """An event was appended after the terminal one."""


class MemoryEventLog:
    """An in-process event log for one stream."""

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        self._events: list[Event] = []
        self._condition = threading.Condition()
        self._wakeups = 0

    @property
    def finished(self) -> bool:
        return bool(self._events) and self._events[-1].terminal

    def append(self, kind: str, data: dict[str, Any]) -> Event:
        """Add the next event and wake every reader."""
        with self._condition:
            if self.finished:
                raise LogClosedError(f"stream {self.stream_id} already ended")
            event = Event(len(self._events), kind, data)
            self._events.append(event)
            self._condition.notify_all()
            return event

    def finish(self, kind: str, data: dict[str, Any]) -> bool:
        """Append a terminal event unless one is there already; True if this call ended the log."""
        if kind not in TERMINAL_KINDS:
            raise ValueError(f"{kind!r} is not a terminal event")
        with self._condition:
            if self.finished:
                return False
            self.append(kind, data)
            return True

    def wake(self) -> None:
        """Wake readers without an event (a disconnect or a shutdown wants their attention)."""
        with self._condition:
            self._wakeups += 1
            self._condition.notify_all()

    def read_after(self, seq: int, timeout: float | None) -> list[Event]:
        """Events with a sequence number above ``seq``; waits up to ``timeout`` for one.

        Returns an empty list on timeout or on ``wake()``. ``timeout=None``
        waits until an event or a wake-up.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            wakeups = self._wakeups
            while len(self._events) <= seq + 1:
                if self._wakeups != wakeups:
                    return []
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return []
                self._condition.wait(remaining)
            return self._events[seq + 1 :]


class MemoryStore:
    """Creates in-process event logs; the default store of ``Streaming``."""

    def create(self, stream_id: str) -> MemoryEventLog:
        return MemoryEventLog(stream_id)
