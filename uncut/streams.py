"""Internal: the part every adapter shares: streams, their admission, and the response bodies that carry them.

``Streams`` holds what is app-wide (the options, callbacks, the event-log
store, admission, the streams this process produces) and turns a request
into a response body without any web framework: a view calls ``stream`` (a
new stream), ``follow`` (a resume), ``status``, ``cancel`` or ``start``, then
wraps ``body(...)`` in its framework's streaming response with
``HEADERS`` and ``CONTENT_TYPES[surface]``; a non-streaming request
``collect``s its stream instead (``collect_answer``, ``collect_response``),
with the same slot, share, deadline, caps and disconnect watch. The
adapters (``uncut.flask``, ``uncut.django``, ``uncut.wsgi``) are that
wrapping and little else.
"""

from __future__ import annotations

import logging
import secrets
import time
import warnings
import weakref
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables import Runnable, RunnableConfig

from uncut.adaptive import AdaptiveLimit
from uncut.admission import Refusal, StreamLimiter, retry_signal
from uncut.answers import Answer
from uncut.callbacks import check_sync_handlers, with_handler, with_safe_callbacks
from uncut.concurrency import client_socket
from uncut.errors import CANCELLED, READER_LIMIT, THREAD_LEASE_LOST, StreamNotFound, StreamRefused
from uncut.eventlog import Event, EventLog, MemoryEventLog, MemoryStore
from uncut.gate import ADMITTED_KEY
from uncut.leases import LEASE_TTL_SECONDS, LeaseStore, MemoryLeases, take_lease
from uncut.openai_chunks import ChunkFormat
from uncut.openai_responses import ResponsesFormat
from uncut.options import StreamOptions
from uncut.producer import Producer, StreamBudget, StreamPlan
from uncut.relay import Relay
from uncut.stall import StallLimits
from uncut.telemetry import NO_TRACE, StreamTrace, metrics, tracer, tracing
from uncut.threads import NOTHING, ThreadBusy, plan_turn
from uncut.ui_messages import HEADERS as UI_HEADERS
from uncut.ui_messages import UIMessageFormat
from uncut.ui_request import UIChatRequest, chat_thread_id
from uncut.ui_threads import plan_chat_turn

# answer: one JSON answer, not a stream; agent: the LangGraph Agent Server API (uncut.agent_server)
SURFACES = ("sse", "text", "openai", "ui", "responses", "answer", "agent")
# Surfaces whose runs a client can come back to: SSE and the Agent Server by Last-Event-ID, the AI SDK's by its chat id.
RESUMABLE = frozenset({"sse", "ui", "agent"})
_EVENT_STREAM = "text/event-stream; charset=utf-8"
CONTENT_TYPES = {
    "sse": _EVENT_STREAM,
    "text": "text/plain; charset=utf-8",
    "openai": _EVENT_STREAM,
    "ui": _EVENT_STREAM,
    "responses": _EVENT_STREAM,
    "answer": "application/json",
    "agent": _EVENT_STREAM,
}
# On every stream: no cache, no buffering by nginx; never a Content-Length, never compressed.
HEADERS = (("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no"))


def headers_for(surface: str) -> list[tuple[str, str]]:
    """``HEADERS``, plus a protocol's own (the AI SDK's ``x-vercel-ai-ui-message-stream``)."""
    return [*HEADERS, *UI_HEADERS] if surface == "ui" else list(HEADERS)


summary_log = logging.getLogger("uncut.stream")


class EventLogStore(Protocol):
    """Where streams' events are kept: ``MemoryStore`` (this process) or ``RedisStore`` (shared)."""

    shared: bool

    def create(self, stream_id: str, owner: str | None = None) -> EventLog: ...
    def open(self, stream_id: str) -> EventLog | None: ...
    def remote_reader(self, stream_id: str) -> bool: ...
    def announce_cancel(self, stream_id: str) -> None: ...
    def name_stream(self, name: str, stream_id: str) -> None: ...
    def named(self, name: str) -> str | None: ...
    def forget_name(self, name: str, stream_id: str) -> None: ...
    def watch_cancels(self, on_cancel: Callable[[str], None]) -> None: ...


def fixed_retry_after(options: StreamOptions) -> float:
    """The ``Retry-After`` of a refusal that has no schedule to go by (readers; the line turned off): ``retry_ms``."""
    return max(1, -(-options.retry_ms // 1000))


def _both(first: Callable[[], None], second: Callable[[], None]) -> Callable[[], None]:
    def call() -> None:
        try:
            first()
        finally:
            second()

    return call


def _renamed(old: str, new: str) -> None:
    warnings.warn(f"{old} is deprecated since uncut 0.3 and goes in 0.4: use {new}", DeprecationWarning, stacklevel=3)


def new_stream_id() -> str:
    return "s_" + secrets.token_hex(8)


def log_summary(summary: dict[str, Any]) -> None:
    """The default: one ``stream_summary`` line per response, its fields in the record (``record.fields``)."""
    summary_log.info("stream_summary", extra={"fields": summary})


class StreamBody:
    """The body a WSGI server iterates and closes.

    Frameworks hand a streaming body to the server as it is (Flask with
    ``direct_passthrough``), so nothing else runs when the server closes
    it, and closing a generator that never started runs none of its code:
    a response dropped before its first byte would leave its run waiting,
    holding its slot. This ``close()`` always runs.
    """

    __slots__ = ("_frames", "_producer", "_release", "_unread")

    def __init__(
        self,
        frames: Iterator[bytes],
        producer: Producer | None,
        release: Callable[[], None] | None = None,
        unread: Callable[[], None] | None = None,
    ) -> None:
        self._frames = frames
        self._producer = producer
        self._release = release
        self._unread = unread  # the relay's close_unread: a response closed before its first byte still ends

    def __iter__(self) -> Iterator[bytes]:
        return self._frames

    def close(self) -> None:
        try:
            close = getattr(self._frames, "close", None)
            if close is not None:
                close()
        finally:
            if self._release is not None:
                self._release()  # a reader's slot, also when its body never started
            if self._unread is not None:
                self._unread()
            producer = self._producer
            if producer is not None and not producer.started:
                producer.cancel()


class Streams:
    """App-wide streaming state, and every way a request starts, follows, inspects or stops a stream."""

    def __init__(
        self,
        options: StreamOptions = StreamOptions(),
        *,
        callbacks: Sequence[BaseCallbackHandler] = (),
        metadata: Mapping[str, Any] | None = None,
        store: EventLogStore | None = None,
        leases: LeaseStore | None = None,
        on_summary: Callable[[dict[str, Any]], None] = log_summary,
    ) -> None:
        self.options = options
        self.callbacks = tuple(check_sync_handlers(callbacks))  # async handlers are refused here, at start-up
        self.metadata = dict(metadata or {})
        self.store: EventLogStore = store if store is not None else MemoryStore()
        # One run per thread: in the shared store's Redis when there is one, so every worker and host agrees.
        self.leases: LeaseStore = leases if leases is not None else getattr(self.store, "leases", None) or MemoryLeases()
        target_lag = options.admission_target_lag_ms / 1000
        self.adaptive = AdaptiveLimit(target_lag, maximum=options.max_concurrent_streams) if options.adaptive_admission else None
        self.limiter = StreamLimiter(
            options.max_concurrent_streams,
            options.max_streams_per_client,
            adaptive=self.adaptive,
            start_budget=options.admission_start_budget_ms / 1000,
            retry_after=fixed_retry_after(options),
        )
        # Resume readers hold connections, not runs: a share of their own, so one client cannot hold them all.
        self.readers = StreamLimiter(*options.reader_limits(), client_reason=READER_LIMIT, retry_after=fixed_retry_after(options))
        self.on_summary = on_summary
        # The streams this process is producing, by stream id (gone once nobody holds them).
        self.producers: "weakref.WeakValueDictionary[str, Producer]" = weakref.WeakValueDictionary()
        producers = self.producers

        def cancelled_elsewhere(stream_id: str) -> None:  # a cancel in another worker (shared store)
            producer = producers.get(stream_id)
            if producer is not None:
                producer.cancel()

        self.store.watch_cancels(cancelled_elsewhere)

    # -- new streams -----------------------------------------------------------------------

    def _new_producer(
        self,
        options: StreamOptions,
        runnable: Runnable[Any, Any],
        input: Any,
        *,
        owner: str | None,
        client: str | None,
        config: RunnableConfig | None,
        callbacks: Sequence[BaseCallbackHandler],
        labels: dict[str, Any],
        kept: bool,
        environ: Mapping[str, Any] | None,
        on_end: Callable[[], None] | None = None,
        start_data: Mapping[str, Any] | None = None,
        stream_id: str | None = None,
        plan: StreamPlan | None = None,
        detached: bool = False,
        limiter: StreamLimiter | None = None,
        trace: StreamTrace = NO_TRACE,
    ) -> Producer:
        """An admitted stream and its log: in the store when a client can come back for it (``kept``), else private.

        The stream holds an admission slot until it ends; raises
        ``StreamRefused`` when the process or the client has none left (and
        ends ``trace`` so). Plain-text and /v1 responses never show their
        stream id, so their events are not kept (no TTL retention, no store
        write per token).
        """
        stream_id = stream_id or new_stream_id()
        try:
            # async handlers are refused here, before a slot is taken
            run_config = with_safe_callbacks(config, [*self.callbacks, *callbacks])
            for handler in trace.handlers():  # ours: never raises (raise_error False), so not wrapped (2 µs a token, bench/OTEL.md)
                run_config = with_handler(run_config, handler)
            admitted = self._slot(client, environ or {}) if limiter is None else self._own_slot(limiter, client)
        except BaseException as exc:
            trace.finished({"stream_id": stream_id, "outcome": "rejected" if isinstance(exc, StreamRefused) else "server_error"})
            raise
        if trace.traceparent is not None:
            start_data = {**(start_data or {}), "traceparent": trace.traceparent}
        try:
            log = self.store.create(stream_id, owner) if kept else MemoryEventLog(stream_id, owner)
            producer = Producer(
                runnable,
                input,
                log,
                config=run_config,
                start_data={**labels, **(start_data or {})},
                on_disconnect=options.on_disconnect,
                grace_seconds=options.resume_grace_seconds,
                remote_reader=self.store.remote_reader if self.store.shared and kept else None,
                shutdown_notice=options.shutdown_notice,
                budget=StreamBudget(options.max_stream_seconds, options.max_stream_events, options.max_stream_bytes),
                on_end=admitted if on_end is None else _both(admitted, on_end),
                stall=StallLimits(options.first_chunk_timeout_seconds, options.between_chunks_timeout_seconds),
                plan=plan,
                detached=detached,
                trace=trace,
            )
        except BaseException:
            admitted()
            trace.finished({"stream_id": stream_id, "outcome": "server_error"})
            raise
        self.producers[producer.stream_id] = producer
        return producer

    def _slot(self, client: str | None, environ: Mapping[str, Any]) -> Callable[[], None]:
        """The run's admission slot: the one the gate took for this request (uncut.gate), else one taken now."""
        gated = environ.get(ADMITTED_KEY)
        release: Callable[[], None] | None = gated.claim() if gated is not None else None
        if release is not None:
            return release
        admitted = self.limiter.try_acquire(client, retry_signal(environ))
        if isinstance(admitted, Refusal):
            raise StreamRefused(admitted)
        return admitted

    @staticmethod
    def _own_slot(limiter: StreamLimiter, client: str | None) -> Callable[[], None]:
        """A slot of a surface's own limiter (the Agent Server's: its clients cannot retry a refusal)."""
        admitted = limiter.try_acquire(client)
        if isinstance(admitted, Refusal):
            raise StreamRefused(admitted)
        return admitted

    def _relay(
        self,
        log: EventLog,
        options: StreamOptions,
        surface: str,
        environ: Mapping[str, Any],
        labels: dict[str, Any],
        summary_fields: Mapping[str, Any] | None,
        trace: StreamTrace = NO_TRACE,
        **relay_args: Any,
    ) -> Relay:
        metrics().stream_started(surface)
        fields = {"surface": surface, **labels, **(summary_fields or {})}
        on_summary = self.on_summary

        def on_finish(summary: dict[str, Any]) -> None:
            metrics().stream_finished(surface, summary["outcome"])
            metrics().heartbeats_sent(summary.get("heartbeats", 0))
            whole = {**summary, **fields}
            trace.finished(whole)
            on_summary(whole)

        return Relay(log, options, client_socket=client_socket(environ), on_finish=on_finish, **relay_args)

    def options_with(self, overrides: Mapping[str, Any]) -> StreamOptions:
        """The app's options with a call's own (None keeps the app's value)."""
        chosen = {k: v for k, v in overrides.items() if v is not None}
        if not chosen:
            return self.options
        return StreamOptions(**{**{name: getattr(self.options, name) for name in StreamOptions.names()}, **chosen})

    def stream(
        self,
        runnable: Runnable[Any, Any],
        input: Any,
        *,
        surface: str = "sse",
        environ: Mapping[str, Any] | None = None,
        owner: str | None = None,
        client: str | None = None,
        callbacks: Sequence[BaseCallbackHandler] = (),
        config: RunnableConfig | None = None,
        metadata: Mapping[str, Any] | None = None,
        summary_fields: Mapping[str, Any] | None = None,
        chat_id: str | None = None,
        on_end: Callable[[], None] | None = None,
        start_data: Mapping[str, Any] | None = None,
        stream_id: str | None = None,
        plan: StreamPlan | None = None,
        detached: bool = False,
        limiter: StreamLimiter | None = None,
        **overrides: Any,
    ) -> Relay:
        """A new, admitted stream and the relay for this response; raises ``StreamRefused``.

        ``owner`` is who may later follow or cancel it; ``client`` whose
        share of admission it takes; ``environ`` gives the client's socket
        (watched for a disconnect); ``chat_id`` makes it that chat's
        active stream (``follow_chat``); ``on_end`` is called once when the
        stream is over; ``start_data`` goes in its ``start`` event (and
        so to every reader's formatter, replays included) but not in its
        logs; ``stream_id`` names it (the Agent Server's run id), ``plan``
        streams it its own way (uncut.producer.StreamPlan), ``detached``
        keeps it running with no reader, ``limiter`` admits it instead of
        the app's (a surface's own share); ``overrides`` are option names.
        """
        if surface not in SURFACES:
            raise ValueError(f"surface={surface!r}: must be one of {', '.join(SURFACES)}")
        options = self.options_with(overrides)
        labels = {**self.metadata, **(metadata or {})}
        resumable = surface in RESUMABLE
        stream_id = stream_id or new_stream_id()
        trace = tracer().response("stream", surface=surface, stream_id=stream_id, labels=labels, environ=environ or {})
        producer = self._new_producer(
            options,
            runnable,
            input,
            owner=owner,
            client=client,
            config=config,
            callbacks=callbacks,
            labels=labels,
            kept=resumable,
            environ=environ,
            on_end=on_end,
            start_data=start_data,
            stream_id=stream_id,
            plan=plan,
            detached=detached,
            limiter=limiter,
            trace=trace,
        )
        relay = self._relay(
            producer.log,
            options,
            surface,
            environ or {},
            labels,
            summary_fields,
            trace=trace,
            producer=producer,
            resumable=resumable,
            move_on_shutdown=resumable and self.store.shared,
        )
        if chat_id is not None:
            self._remember_chat(chat_id, relay, owner)
        return relay

    def start(
        self,
        runnable: Runnable[Any, Any],
        input: Any,
        *,
        owner: str | None = None,
        client: str | None = None,
        callbacks: Sequence[BaseCallbackHandler] = (),
        config: RunnableConfig | None = None,
        metadata: Mapping[str, Any] | None = None,
        environ: Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> str:
        """Start a stream with no reader yet (readers come with ``follow``); returns its stream id.

        It holds an admission slot like any run (raises ``StreamRefused``)
        and waits ``resume_grace_seconds`` for its first reader, then stops;
        ``overrides`` are option names.
        """
        producer = self._new_producer(
            self.options_with(overrides),
            runnable,
            input,
            owner=owner,
            client=client,
            config=config,
            callbacks=callbacks,
            labels={**self.metadata, **(metadata or {})},
            kept=True,
            environ=environ,
        )
        producer.start()
        producer.await_reader()
        return producer.stream_id

    def stream_thread(
        self,
        graph: Runnable[Any, Any],
        thread_id: str,
        *,
        input: Any = NOTHING,
        resume: Any = NOTHING,
        reject_pending: bool = False,
        validate: bool = True,
        config: RunnableConfig | None = None,
        lease_seconds: float = LEASE_TTL_SECONDS,
        **run_args: Any,
    ) -> Relay:
        """A stream on the graph's thread: a new ``input``, or the ``resume`` answer to its pending interrupt.

        Before any byte: the thread's lease (``ThreadBusy`` while another run
        holds it, on any worker sharing the store), then the thread's state
        (uncut.threads: ``Interrupted``, ``NothingToResume``,
        ``InvalidResume``), then admission (``StreamRefused``). The lease is
        given back when the run ends; a worker that dies holds it at most
        ``lease_seconds``. ``run_args`` are ``stream``'s.
        """
        lease = take_lease(self.leases, thread_id, lease_seconds)
        if lease is None:
            raise ThreadBusy(f"thread {thread_id} has a run in progress; try again when it ends")
        try:
            turn = plan_turn(graph, thread_id, input=input, resume=resume, reject_pending=reject_pending, config=config, validate=validate)
            relay = self.stream(graph, turn.input, config=turn.config, on_end=lease.release, **run_args)
        except BaseException:
            lease.release()
            raise
        producer = relay.producer
        if producer is not None:  # someone else holds the thread now (this worker stalled past the lease): stop
            lease.on_lost = lambda: producer.cancel(THREAD_LEASE_LOST, outcome="upstream_error")
        return relay

    def stream_chat_thread(
        self,
        graph: Runnable[Any, Any],
        chat: UIChatRequest,
        *,
        thread_id: str | None = None,
        owner: str | None = None,
        **run_args: Any,
    ) -> Relay:
        """An AI SDK chat kept on ``graph``'s thread (uncut.ui_threads), streamed as UI messages; resumable by its chat id.

        The request's approval answers resume the thread, or its new user
        message is added; refusals are ``stream_thread``'s. ``thread_id``
        defaults to one derived from ``owner`` and the chat id, so one
        owner's chat id never names another's thread.
        """
        turn = plan_chat_turn(chat)
        return self.stream_thread(
            graph,
            thread_id or chat_thread_id(owner, chat.chat_id),
            input=turn.input,
            resume=turn.resume,
            reject_pending=turn.reject_pending,
            surface="ui",
            chat_id=chat.chat_id,
            start_data=turn.start_data,
            owner=owner,
            **run_args,
        )

    # -- existing streams ------------------------------------------------------------------

    def _open(self, stream_id: str, owner: str | None) -> EventLog:
        """The stream's log, if it exists and belongs to whoever asks; anything else is the same StreamNotFound."""
        log = self.store.open(stream_id)
        if log is None or log.owner != owner:
            hint = (
                ""
                if self.store.shared
                else (
                    " With several worker processes or hosts, each keeps its own streams in memory:"
                    " use a shared store (uncut.redis_store.RedisStore)."
                )
            )
            raise StreamNotFound(f"Stream {stream_id} is unknown here or has expired.{hint}")
        return log

    def follow(
        self,
        stream_id: str,
        after: int = -1,
        *,
        environ: Mapping[str, Any] | None = None,
        owner: str | None = None,
        heartbeat_events: bool = False,
        summary_fields: Mapping[str, Any] | None = None,
        surface: str = "sse",
        client: str | None = None,
    ) -> Relay | None:
        """A relay for every event after ``after``, then the live tail; starts nothing.

        None when the client already has the terminal event (answer 204,
        which stops a browser's EventSource). Raises ``StreamNotFound``,
        also for a stream another owner started, and ``StreamRefused``
        when the process or ``client`` holds all the readers it may
        (``max_concurrent_readers``, ``max_readers_per_client``). The
        reader's place is given back when its body ends or is closed.
        """
        log = self._open(stream_id, owner)
        last = log.last()
        if last is not None and last.terminal and last.seq is not None and after >= last.seq:
            return None
        options = self.options_with({"heartbeat_events": heartbeat_events})
        admitted = self.readers.try_acquire(client)
        if isinstance(admitted, Refusal):
            raise StreamRefused(admitted)
        labels = dict(self.metadata)
        trace: StreamTrace = NO_TRACE
        if tracing():
            origin = self._traceparent_of(log)
            trace = tracer().response("resume", surface=surface, stream_id=stream_id, labels=labels, environ=environ or {}, origin=origin)
        try:
            relay = self._relay(
                log,
                options,
                surface,
                environ or {},
                labels,
                summary_fields,
                trace=trace,
                producer=self.producers.get(stream_id),
                after=after,
                resumable=True,
                move_on_shutdown=self.store.shared,
                release=admitted,
            )
        except BaseException:
            admitted()
            trace.finished({"stream_id": stream_id, "outcome": "server_error"})
            raise
        metrics().stream_resumed()
        return relay

    def _traceparent_of(self, log: EventLog) -> str | None:
        """The trace of the response that started the stream, from its start event (kept with the stream, on any worker)."""
        producer = self.producers.get(log.stream_id)
        if producer is not None:
            return producer.trace.traceparent
        try:
            first = log.read_after(-1, 0.5)[:1]
        except Exception:  # noqa: BLE001 - a trace link is worth no failed resume
            return None
        if first and first[0].kind == "start":
            traceparent = first[0].data.get("traceparent")
            return traceparent if isinstance(traceparent, str) else None
        return None

    # -- chats (the AI SDK's resume) ----------------------------------------------------

    @staticmethod
    def _chat_name(chat_id: str, owner: str | None) -> str:
        return f"chat:{owner or '-'}:{chat_id}"  # per owner: one key's chat ids never reach another's streams

    def _remember_chat(self, chat_id: str, relay: Relay, owner: str | None) -> None:
        """Make ``relay``'s stream the chat's active stream, the one ``follow_chat`` replays, until a reader has it all."""
        name = self._chat_name(chat_id, owner)
        self.store.name_stream(name, relay.stream_id)
        self._forget_when_delivered(relay, name)

    def _forget_when_delivered(self, relay: Relay, name: str) -> None:
        store, stream_id = self.store, relay.stream_id

        def delivered() -> None:
            store.forget_name(name, stream_id)

        relay.on_delivered = delivered

    def follow_chat(
        self,
        chat_id: str,
        *,
        environ: Mapping[str, Any] | None = None,
        owner: str | None = None,
        summary_fields: Mapping[str, Any] | None = None,
        client: str | None = None,
    ) -> Relay | None:
        """A relay replaying the chat's active stream from its start, then its live tail; None when there is none.

        The AI SDK's resume re-reads a stream from its ``start`` chunk and
        swaps the message in place. A stream stays active until some reader
        has been sent its terminal event: a client cut just before the end
        still gets the whole answer, and once one has it all, ``204``.
        A reader like ``follow``'s: raises ``StreamRefused`` past the caps.
        """
        name = self._chat_name(chat_id, owner)
        stream_id = self.store.named(name)
        if stream_id is None:
            return None
        try:
            relay = self.follow(
                stream_id,
                -1,
                environ=environ,
                owner=owner,
                summary_fields=summary_fields,
                surface="ui",
                client=client,
            )
        except StreamNotFound:
            return None  # expired: nothing to resume
        if relay is not None:
            self._forget_when_delivered(relay, name)
        return relay

    def status(self, stream_id: str, *, owner: str | None = None) -> dict[str, Any]:
        """``running``, ``completed``, ``failed`` or ``cancelled``, with the event count. Raises ``StreamNotFound``."""
        log = self._open(stream_id, owner)
        last = log.last()
        status = "running"
        if last is not None and last.terminal:
            kind = last.data.get("error", {}).get("type") if last.kind == "error" else None
            status = "completed" if last.kind == "end" else ("cancelled" if kind == "cancelled" else "failed")
        last_id = f"{stream_id}:{last.seq}" if last else None
        return {"stream_id": stream_id, "status": status, "events": log.count(), "last_event_id": last_id}

    def cancel(self, stream_id: str, *, owner: str | None = None) -> dict[str, Any]:
        """Stop a stream, here or (shared store) in whichever worker runs it. Raises ``StreamNotFound``."""
        log = self._open(stream_id, owner)
        producer = self.producers.get(stream_id)
        if producer is not None:
            producer.cancel()
        elif log.finish("error", CANCELLED):
            self.store.announce_cancel(stream_id)  # the worker producing it stops at once, even mid-pause
        return self.status(stream_id, owner=owner)

    @staticmethod
    def collect(relay: Relay, frame: Callable[[Event], bytes]) -> None:
        """Run a relay to its end with nobody streaming: each event goes to ``frame``, its bytes nowhere.

        The relay still watches the client (a client that leaves stops the
        run) and every budget holds (the deadline, the size caps), as on a
        stream; the run's admission slot is given back when it ends.
        """
        frames = relay.frames(frame)
        try:
            for _ in frames:
                pass
        finally:
            frames.close()

    @staticmethod
    def collect_response(relay: Relay, echo: Mapping[str, Any]) -> ResponsesFormat:
        """A non-streaming ``responses`` request: ``.final`` is the Response object (``collect``)."""
        responses = ResponsesFormat(relay.stream_id, dict(echo))
        Streams.collect(relay, responses.frame)
        return responses

    @staticmethod
    def collect_answer(relay: Relay) -> Answer:
        """A non-streaming answer (chat completions, one JSON answer): the text, calls, finish reason, usage (``collect``)."""
        answer = Answer()
        Streams.collect(relay, answer.frame)
        return answer

    # -- bodies -------------------------------------------------------------------------

    @staticmethod
    def body(
        relay: Relay,
        surface: str = "sse",
        *,
        model: str = "",
        include_usage: bool = False,
        echo: Mapping[str, Any] | None = None,
        wrap: Callable[[Iterator[bytes]], Iterator[bytes]] | None = None,
    ) -> StreamBody:
        """What the server iterates for this surface; ``wrap`` lets a framework keep its request context.

        ``model`` and ``include_usage`` are for ``openai`` (chat completions),
        ``echo`` (the request fields a Response repeats) for ``responses``.
        """
        if surface == "text":
            frames = relay.text_chunks()
        elif surface == "openai":
            chunks = ChunkFormat(f"chatcmpl-{relay.stream_id}", model, int(time.time()), include_usage)
            frames = relay.frames(chunks.frame)
        elif surface == "ui":
            ui = UIMessageFormat(relay.stream_id)
            frames = relay.frames(ui.frame, moved=ui.moved())
        elif surface == "responses":
            frames = relay.frames(ResponsesFormat(relay.stream_id, dict(echo or {})).frame)
        else:
            frames = relay.sse_frames()
        return StreamBody(wrap(frames) if wrap is not None else frames, relay.producer, relay.release, relay.close_unread)

    # -- the names before 0.3 (one word for a stream: docs/ARCHITECTURE.md, "Glossary") -------

    def run(self, *args: Any, **kwargs: Any) -> Relay:
        """Deprecated since 0.3, removed in 0.4: ``stream``."""
        _renamed("Streams.run", "Streams.stream")
        return self.stream(*args, **kwargs)

    def run_thread(self, *args: Any, **kwargs: Any) -> Relay:
        """Deprecated since 0.3, removed in 0.4: ``stream_thread``."""
        _renamed("Streams.run_thread", "Streams.stream_thread")
        return self.stream_thread(*args, **kwargs)

    def run_chat_thread(self, *args: Any, **kwargs: Any) -> Relay:
        """Deprecated since 0.3, removed in 0.4: ``stream_chat_thread``."""
        _renamed("Streams.run_chat_thread", "Streams.stream_chat_thread")
        return self.stream_chat_thread(*args, **kwargs)
