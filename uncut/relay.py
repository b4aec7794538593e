"""Internal: the consumer: turns a stream's event log into the bytes of one response.

It waits on the log with the heartbeat interval as its timeout: when the
model is silent it writes a heartbeat, otherwise it writes every event that
is ready in one chunk. It owns what happens at the edges of a stream: the
first bytes go out at once, a client that closes its socket is noticed
(socket watch), an over-long stream, or one whose framed bytes reach the
byte budget, ends with an explicit error, and one
summary is reported whatever the outcome. A relay may also follow a stream
it did not start (a resume): it reads after a given sequence number and
starts nothing. Imports nothing from Flask.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
import time
from contextlib import closing
from typing import Any, Callable, Generator, Iterator

from uncut import sse
from uncut.concurrency import SocketWatch
from uncut.errors import OUTCOME_OF_ERROR, SERVER_ERROR, TOO_LARGE, StreamAborted
from uncut.eventlog import Event, EventLog
from uncut.options import StreamOptions
from uncut.producer import TIMEOUT_BODY, Producer
from uncut.shutdown import SHUTDOWN, ShutdownNotice

log = logging.getLogger(__name__)

# Terminal error types that get an outcome of their own in the summary (uncut.errors).
_OUTCOME_BY_ERROR = OUTCOME_OF_ERROR


def _nothing() -> None:
    pass


class Relay:
    """Couples one event log (and, when this process runs it, its Producer) to one response."""

    def __init__(
        self,
        log: EventLog,
        options: StreamOptions,
        *,
        producer: Producer | None = None,
        after: int = -1,
        resumable: bool = False,
        move_on_shutdown: bool = False,
        client_socket: Any = None,
        on_finish: Callable[[dict[str, Any]], None] | None = None,
        release: Callable[[], None] | None = None,
    ) -> None:
        self.log = log
        self.producer = producer
        self.options = options
        self.after = after
        self.resumable = resumable  # the client can reconnect to this stream (SSE with ids)
        self.move_on_shutdown = move_on_shutdown  # ...on another worker too: a shared store
        self.outcome: str | None = None
        self._socket = client_socket
        self._on_finish = on_finish
        # Gives back what this reader holds (a resume reader's slot); safe to call twice, and called
        # when the reading ends or, for a body the server never iterated, when it is closed.
        self.release: Callable[[], None] = release or _nothing
        # Called once the terminal event has been handed to the server (the client has the whole stream).
        self.on_delivered: Callable[[], None] | None = None
        self._disconnected = threading.Event()
        self._heartbeats = 0
        self._events_sent = 0
        self.bytes_sent = 0  # of frames (not heartbeats), counted against max_stream_bytes
        self._writing_since: float | None = None
        self._watch: SocketWatch | None = None
        self._began = False  # _batches ran: its finally reports; else close_unread does
        self._id_prefix = f"{log.stream_id}:"  # an SSE id is "<stream id>:<seq>"

    @property
    def stream_id(self) -> str:
        return self.log.stream_id

    # -- the surfaces -----------------------------------------------------

    def frames(self, frame: Callable[[Event], bytes], prefix: bytes = b"", moved: bytes | None = None) -> Generator[bytes, None, None]:
        """Each ready batch of events framed by ``frame`` into one write; heartbeat comments between.

        ``moved`` is what a reader leaving a draining worker is told (the
        run goes on, the client resumes elsewhere): by default an SSE comment.
        """
        heartbeat = self.options.heartbeat_seconds or None
        beat = sse.HEARTBEAT_EVENT if self.options.heartbeat_events else sse.HEARTBEAT
        limit = self.options.max_stream_bytes
        with closing(self._batches(heartbeat)) as batches:  # its finally runs when we are closed, not in a finalizer
            for events in batches:
                if not events:
                    self._heartbeats += 1
                    yield beat
                    continue
                try:
                    body = self._framed(events, frame, limit)
                except Exception:  # noqa: BLE001 - an event that cannot be framed must not cut the stream silently
                    body = self._frame_each(events, frame)
                if body or prefix:
                    yield prefix + body if prefix else body
                prefix = b""
        if self.outcome == "server_shutdown" and self.move_on_shutdown:
            yield moved if moved is not None else sse.format_comment("server restarting: reconnect with Last-Event-ID to resume")

    def _framed(self, events: list[Event], frame: Callable[[Event], bytes], limit: int | None) -> bytes:
        """The batch framed, up to the byte budget: the event that reaches it is the last one sent.

        If the run is still going, it ends with ``too_large`` and that
        terminal event comes with the next batch. If the batch already holds
        the run's terminal event (a reader far behind), the rest of the batch
        gives way to a ``too_large`` error of this response's own.
        """
        if not limit:
            body = frame(events[0]) if len(events) == 1 else b"".join([frame(event) for event in events])
            self.bytes_sent += len(body)
            return body
        out = []
        last = len(events) - 1
        for index, event in enumerate(events):
            framed = frame(event)
            out.append(framed)
            self.bytes_sent += len(framed)
            if self.bytes_sent < limit or event.terminal:
                continue
            if self.outcome is None:
                self._too_large()
            elif index < last:
                out.append(frame(Event(None, "error", TOO_LARGE)))
                self.outcome = "too_large"
            break
        return b"".join(out)

    def _too_large(self) -> None:
        """The bytes sent reached ``max_stream_bytes``: end the run as its own byte budget would.

        The run counts its log's bytes; a framing may send many more (a
        ``/v1`` chunk repeats the id and model with every token), so the
        budget also holds for what actually went out.
        """
        log.warning("stream %s: %d bytes sent, over max_stream_bytes; ending the stream", self.stream_id, self.bytes_sent)
        self.log.finish("error", TOO_LARGE)
        if self.producer is not None:
            self.producer.cancel(TOO_LARGE, outcome="too_large")

    def _frame_each(self, events: list[Event], frame: Callable[[Event], bytes]) -> bytes:
        """Frame what can be framed; an event that cannot be ends the run with ``server_error``.

        The run's terminal event comes in a later batch, so the client is
        told, and a client resuming before the bad event gets the same
        error rather than a stream that fails before its first byte.
        """
        out = []
        for event in events:
            try:
                out.append(frame(event))
            except Exception:  # noqa: BLE001
                log.exception("stream %s: event %s (%s) could not be framed; ending the stream", self.stream_id, event.seq, event.kind)
                self.log.finish("error", SERVER_ERROR)
                if self.producer is not None:
                    self.producer.cancel(SERVER_ERROR, outcome="server_error")
        return b"".join(out)

    def sse_frames(self) -> Iterator[bytes]:
        """``retry`` and ``start`` at once, then events, heartbeats, and one terminal event."""
        return self.frames(self._sse_frame, sse.retry_field(self.options.retry_ms))

    def _sse_frame(self, event: Event) -> bytes:
        event_id = None if event.seq is None else f"{self._id_prefix}{event.seq}"
        return sse.format_json_event(event.data, event=event.kind, id=event_id)

    def text_chunks(self) -> Iterator[bytes]:
        """Token text only; an error or a cut ends the response without its chunked terminator."""
        with closing(self._batches(None)) as batches:
            for events in batches:
                text = "".join([e.data["text"] for e in events if e.kind == "token"])
                if text:
                    yield text.encode("utf-8", "replace")
                last = events[-1]
                if last.kind == "error":
                    raise StreamAborted(f"stream {self.stream_id} failed: {last.data['error']['type']}")
        if self.outcome != "completed":
            raise StreamAborted(f"stream {self.stream_id} ended without completing: {self.outcome}")

    # -- the loop they share ----------------------------------------------

    def _batches(self, heartbeat: float | None) -> Generator[list[Event], None, None]:
        """Lists of ready events; an empty list when a heartbeat is due. Ends after the terminal event."""
        log = self.log
        shutdown = SHUTDOWN if self.options.shutdown_notice else None
        restore_timeout = self._tune_socket()
        try:
            self._begin_reading(shutdown)
            deadline = self._deadline()
            heartbeat_every = heartbeat or math.inf
            seq = self.after
            last_sent = time.monotonic()
            while self.outcome is None:
                if shutdown is not None and shutdown.deadline is not None and self.move_on_shutdown and seq >= 0:
                    self._move_elsewhere()
                    return
                wake_at = min(deadline, last_sent + heartbeat_every)
                timeout = None if wake_at == math.inf else max(0.0, wake_at - time.monotonic())
                events = log.read_after(seq, timeout)
                if self._disconnected.is_set():
                    return  # the finally below records the disconnect
                now = time.monotonic()
                if events:
                    seq = self._took(events, seq)
                if self.outcome is None and now >= deadline:
                    # Checked on every pass, not only when idle: a reader always behind must stop too.
                    self._end_at_deadline()
                    if not events:
                        continue  # the terminal event comes with the next read
                elif not events and now - last_sent < heartbeat_every:
                    continue  # woken early (a disconnect check, a shutdown): nothing to send yet
                last_sent = now
                # The write's start is kept so a stalled one (the finally) reads as a slow client.
                self._writing_since = now
                yield events  # empty: a heartbeat is due
                self._writing_since = None
                if self.outcome is not None and self.on_delivered is not None:
                    self.on_delivered()
        except Exception:
            self.outcome = self.outcome or "server_error"
            raise
        finally:
            # Closed early by the server (the client went away) or left by the watch.
            self._end_reading(shutdown, restore_timeout)

    def _begin_reading(self, shutdown: ShutdownNotice | None) -> None:
        """Count this reader on the producer, watch the client's socket, hear a drain."""
        self._began = True
        if self.producer is not None:
            self.producer.attach()
        if self._socket is not None and self.options.watch_disconnect:
            self._watch = SocketWatch(self._socket, self._client_left)
        if shutdown is not None:
            shutdown.register(self.log)

    def _deadline(self) -> float:
        """The stream's own deadline, the same for every reader and reconnect (monotonic; inf: none).

        A log with no producer behind it here (another worker's, read
        through the store) may carry it too.
        """
        log_deadline: float | None = getattr(self.log, "deadline", None)
        if log_deadline is not None:
            return log_deadline
        if self.options.max_stream_seconds:
            return time.monotonic() + self.options.max_stream_seconds
        return math.inf

    def _move_elsewhere(self) -> None:
        """The worker drains: the client resumes elsewhere and the stream goes on.

        Not before the client holds an event id, though (the caller checks):
        a stream that starts on a draining worker first sends its start
        event (the soak found new streams moved with no id, which nobody
        could resume).
        """
        self.outcome = "server_shutdown"
        expect_reader = getattr(self.log, "expect_reader", None)  # a shared store's log: keep the stream waiting for it
        if expect_reader is not None:
            expect_reader(self.options.resume_grace_seconds)

    def _took(self, events: list[Event], seq: int) -> int:
        """Note a batch read from the log; returns the last seq read."""
        last = events[-1]
        if last.terminal:
            self.outcome = self._outcome_of(last)
        self._events_sent += len(events)
        return last.seq if last.seq is not None else seq

    def _end_at_deadline(self) -> None:
        self.log.finish("error", TIMEOUT_BODY)
        if self.producer is not None:
            self.producer.cancel(TIMEOUT_BODY, outcome="timeout")

    def _end_reading(self, shutdown: ShutdownNotice | None, restore_timeout: Callable[[], None]) -> None:
        """Undo ``_begin_reading``, settle this reader's outcome, tell the producer and the summary."""
        if self._watch is not None:
            self._watch.stop()
        if shutdown is not None:
            shutdown.unregister(self.log)
        restore_timeout()
        self.release()
        if self.outcome is None or self._writing_since is not None:
            # No end reached, or closed mid-write: even a batch holding the terminal event never
            # reached this client, so the stream did not complete for it.
            self.outcome = "slow_client" if self._write_stalled() else "client_disconnected"
        if self.producer is not None:
            if self.outcome == "server_error":
                self.producer.cancel()
            self.producer.detach(resumable=self.resumable and self.outcome != "server_error")
        self._report()

    def close_unread(self) -> None:
        """The server closed the body before its first byte: this reader's response ends here, and says so once."""
        if self._began or self.outcome is not None:
            return
        self.outcome = "client_disconnected"
        self._report()

    def _write_stalled(self) -> bool:
        timeout = self.options.send_timeout_seconds
        if not timeout:
            return False
        return self._writing_since is not None and time.monotonic() - self._writing_since >= 0.9 * timeout

    def _tune_socket(self) -> Callable[[], None]:
        """Bound the kernel's send buffer and make a stalled write fail; returns how to undo the timeout."""
        sock = self._socket
        if sock is None:
            return lambda: None
        try:
            if self.options.send_buffer_bytes:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.options.send_buffer_bytes)
            if not self.options.send_timeout_seconds:
                return lambda: None
            previous = sock.gettimeout()
            sock.settimeout(self.options.send_timeout_seconds)
        except OSError:
            return lambda: None

        def restore() -> None:
            try:
                sock.settimeout(previous)
            except OSError:
                pass

        return restore

    def _client_left(self) -> None:
        self._disconnected.set()
        self.log.wake()

    @staticmethod
    def _outcome_of(event: Event) -> str:
        if event.kind == "end":
            return "completed"
        return _OUTCOME_BY_ERROR.get(event.data["error"]["type"], "upstream_error")

    def _report(self) -> None:
        if self._on_finish is None:
            return
        summary: dict[str, Any] = {"stream_id": self.stream_id, "outcome": self.outcome}
        if self.producer is not None:
            summary.update(self.producer.stats.summary())
        summary.update(heartbeats=self._heartbeats, events_sent=self._events_sent, resumed_after=self.after if self.after >= 0 else None)
        self._on_finish(summary)
