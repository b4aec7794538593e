"""The consumer: turns a Generation's event log into the bytes of a response.

It waits on the log with the heartbeat interval as its timeout: when the
model is silent it writes a heartbeat, otherwise it writes every event that
is ready in one chunk. It owns what happens at the edges of a stream: the
first bytes go out at once, a client that closes its socket is noticed
(socket watch), an over-long stream ends with an explicit error, and one
summary is reported whatever the outcome. Imports nothing from Flask.
"""

from __future__ import annotations

import threading
import time
from contextlib import closing
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from webapp import sse
from webapp.concurrency import SocketWatch
from webapp.eventlog import Event
from webapp.generation import Generation
from webapp.shutdown import SHUTDOWN

TIMEOUT_BODY = {"error": {"type": "timeout", "message": "The stream reached its maximum duration.", "retryable": False}}
SHUTDOWN_BODY = {"error": {"type": "server_shutdown", "message": "The server is restarting; retry to continue.", "retryable": True}}

# Terminal error types that get an outcome of their own in the summary.
_OUTCOME_BY_ERROR = {"timeout": "timeout", "server_shutdown": "server_shutdown", "cancelled": "cancelled"}


class StreamAborted(RuntimeError):
    """Raised into the WSGI server so a plain-text response ends without its terminator."""


@dataclass(frozen=True)
class RelayOptions:
    """How one response is relayed; defaults are the service's defaults."""

    heartbeat_seconds: float = 15.0
    retry_ms: int = 3000
    max_stream_seconds: float | None = 300.0
    watch_disconnect: bool = True
    shutdown_notice: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.heartbeat_seconds <= 300:
            raise ValueError(f"heartbeat_seconds={self.heartbeat_seconds!r}: must be from 0 (off) to 300")
        if not 0 <= self.retry_ms <= 600_000:
            raise ValueError(f"retry_ms={self.retry_ms!r}: must be from 0 to 600000")
        if self.max_stream_seconds is not None and not 0 < self.max_stream_seconds <= 86_400:
            raise ValueError(f"max_stream_seconds={self.max_stream_seconds!r}: must be above 0 and at most 86400, or None")


class Relay:
    """Couples one Generation to one response."""

    def __init__(
        self,
        generation: Generation,
        options: RelayOptions,
        *,
        client_socket: Any = None,
        on_finish: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.generation = generation
        self.options = options
        self.outcome: str | None = None
        self._socket = client_socket if options.watch_disconnect else None
        self._on_finish = on_finish
        self._disconnected = threading.Event()
        self._heartbeats = 0

    # -- the two surfaces -------------------------------------------------

    def sse_frames(self) -> Iterator[bytes]:
        """``retry`` and ``start`` at once, then events, heartbeats, and one terminal event."""
        stream_id = self.generation.stream_id
        prefix = sse.format_retry(self.options.retry_ms)
        heartbeat = self.options.heartbeat_seconds or None
        for events in self._batches(heartbeat):
            if not events:
                self._heartbeats += 1
                yield sse.HEARTBEAT
                continue
            frames = b"".join(sse.format_json_event(e.data, event=e.kind, id=f"{stream_id}:{e.seq}") for e in events)
            yield prefix + frames
            prefix = b""

    def text_chunks(self) -> Iterator[bytes]:
        """Token text only; an error ends the response without its chunked terminator."""
        with closing(self._batches(None)) as batches:
            for events in batches:
                text = "".join(e.data["text"] for e in events if e.kind == "token")
                if text:
                    yield text.encode("utf-8")
                last = events[-1]
                if last.kind == "error":
                    raise StreamAborted(f"stream {self.generation.stream_id} failed: {last.data['error']['type']}")

    # -- the loop both share ----------------------------------------------

    def _batches(self, heartbeat: float | None) -> Iterator[list[Event]]:
        """Lists of ready events; an empty list when a heartbeat is due. Ends after the terminal event."""
        watch = None
        log = self.generation.log
        shutdown = SHUTDOWN if self.options.shutdown_notice else None
        try:
            self.generation.start()
            if self._socket is not None:
                watch = SocketWatch(self._socket, self._client_left)
            if shutdown is not None:
                shutdown.register(log)
            stream_deadline = None
            if self.options.max_stream_seconds:
                stream_deadline = time.monotonic() + self.options.max_stream_seconds
            seq = -1
            last_sent = time.monotonic()
            while self.outcome is None:
                deadline, ending = stream_deadline, TIMEOUT_BODY
                cutoff = shutdown.cutoff if shutdown is not None else None
                if cutoff is not None and (deadline is None or cutoff < deadline):
                    deadline, ending = cutoff, SHUTDOWN_BODY
                wake_at = [t for t in (deadline, last_sent + heartbeat if heartbeat else None) if t is not None]
                timeout = max(0.0, min(wake_at) - time.monotonic()) if wake_at else None
                events = log.read_after(seq, timeout)
                if self._disconnected.is_set():
                    return  # the finally below records the disconnect
                now = time.monotonic()
                if not events:
                    if deadline is not None and now >= deadline:
                        log.finish("error", ending)
                        self.generation.cancel()
                    elif heartbeat and now - last_sent >= heartbeat:
                        last_sent = now
                        yield []
                    continue
                seq = events[-1].seq
                if events[-1].terminal:
                    self.outcome = self._outcome_of(events[-1])
                last_sent = now
                yield events
        except Exception:
            self.outcome = self.outcome or "server_error"
            raise
        finally:
            # Closed early by the server (the client went away) or left by the watch.
            if watch is not None:
                watch.stop()
            if shutdown is not None:
                shutdown.unregister(log)
            if self.outcome is None:
                self.outcome = "client_disconnected"
            if self.outcome in ("client_disconnected", "server_error"):
                self.generation.cancel()
            self._report()

    def _client_left(self) -> None:
        self._disconnected.set()
        self.generation.cancel()
        self.generation.log.wake()

    @staticmethod
    def _outcome_of(event: Event) -> str:
        if event.kind == "end":
            return "completed"
        return _OUTCOME_BY_ERROR.get(event.data["error"]["type"], "upstream_error")

    def _report(self) -> None:
        if self._on_finish is None:
            return
        summary = {
            "stream_id": self.generation.stream_id,
            "outcome": self.outcome,
            **self.generation.stats.summary(),
            "heartbeats": self._heartbeats,
        }
        self._on_finish(summary)
