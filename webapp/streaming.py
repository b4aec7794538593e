"""Stream any LangChain Runnable from a Flask view: ``sse_response`` and ``text_response``.

Call them from a view after reading the request::

    @app.post("/summarize")
    def summarize():
        doc = request.get_json()["doc"]
        return sse_response(prompt | llm | StrOutputParser(), {"doc": doc})

They decide everything (ids, options, callbacks, headers) before the first
byte and return a ``Response`` whose body is a ``stream_with_context``
generator around the relay. App-wide defaults come from the ``Streaming``
extension when the app has one, else from ``RelayOptions()``: a plain
``Flask(__name__)`` app that only imports these functions streams correctly.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import weakref
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

from flask import Flask, Response, current_app, has_app_context, has_request_context, request, stream_with_context
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables import Runnable, RunnableConfig

from webapp.callbacks import check_sync_handlers, with_safe_callbacks
from webapp.concurrency import client_socket
from webapp.eventlog import EventLog, MemoryEventLog, MemoryStore
from webapp.generation import CANCELLED, DISCONNECT_POLICIES, Generation, RunBudget
from webapp.limits import Refusal, StreamLimiter
from webapp.logs import current_request_id
from webapp.metrics import metrics
from webapp.openai_format import ChunkFormat
from webapp.relay import Relay, RelayOptions

__all__ = [
    "Streaming", "RelayOptions", "StreamNotFound", "StreamRefused", "sse_response", "text_response",
    "start_stream", "resume_response", "stream_status", "cancel_stream",
]

EXTENSION_KEY = "webapp.streaming"
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

summary_log = logging.getLogger("webapp.stream")


class EventLogStore(Protocol):
    """Where streams' events are kept: ``MemoryStore`` (this process) or ``RedisStore`` (shared)."""

    shared: bool

    def create(self, stream_id: str, owner: str | None = None) -> EventLog: ...
    def open(self, stream_id: str) -> EventLog | None: ...
    def remote_reader(self, stream_id: str) -> bool: ...
    def announce_cancel(self, stream_id: str) -> None: ...
    def watch_cancels(self, on_cancel: Callable[[str], None]) -> None: ...


class StreamNotFound(LookupError):
    """No such stream here: unknown, expired, (memory store) kept by another worker, or someone else's."""


class StreamRefused(Exception):
    """No run was admitted: the worker is full (503) or the client holds its share (429)."""

    def __init__(self, refusal: Refusal, retry_after: int) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal
        self.retry_after = retry_after


def _no_owner() -> str | None:
    return None


def _remote_address() -> str | None:
    return request.remote_addr if has_request_context() else None


@dataclass(frozen=True)
class StreamingDefaults:
    """App-wide defaults for every streamed response.

    ``owner()`` names who starts a run (a key's hash, a user id); only the
    same owner may then follow, resume, inspect or cancel it. ``client()``
    names whose share of ``limiter`` a new run takes.
    """

    options: RelayOptions = field(default_factory=RelayOptions)
    callbacks: tuple[BaseCallbackHandler, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    store: EventLogStore = field(default_factory=MemoryStore)
    limiter: StreamLimiter = field(default_factory=lambda: StreamLimiter(0))
    on_disconnect: str = "cancel"
    grace_seconds: float = 15.0
    owner: Callable[[], str | None] = _no_owner
    client: Callable[[], str | None] = _remote_address
    # The runs this process is producing, by stream id (gone once nobody holds them).
    generations: "weakref.WeakValueDictionary[str, Generation]" = field(default_factory=weakref.WeakValueDictionary)


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


# app.config key -> (RelayOptions field, converter), for the Flask-style configuration of the extension.
CONFIG_KEYS = {
    "STREAMING_HEARTBEAT_SECONDS": ("heartbeat_seconds", float),
    "STREAMING_RETRY_MS": ("retry_ms", int),
    "STREAMING_MAX_STREAM_SECONDS": ("max_stream_seconds", float),
    "STREAMING_WATCH_DISCONNECT": ("watch_disconnect", _as_bool),
    "STREAMING_SHUTDOWN_NOTICE": ("shutdown_notice", _as_bool),
    "STREAMING_SEND_TIMEOUT_SECONDS": ("send_timeout_seconds", float),
    "STREAMING_SEND_BUFFER_BYTES": ("send_buffer_bytes", int),
    "STREAMING_MAX_STREAM_EVENTS": ("max_stream_events", int),
    "STREAMING_MAX_STREAM_BYTES": ("max_stream_bytes", int),
}


def _options_from_config(base: RelayOptions, config: Mapping[str, Any]) -> RelayOptions:
    overrides = {}
    for key, (name, convert) in CONFIG_KEYS.items():
        if key in config:
            try:
                overrides[name] = convert(config[key])
            except (TypeError, ValueError) as exc:
                raise ValueError(f"app.config[{key!r}]={config[key]!r}: {exc}") from None
    try:
        return replace(base, **overrides)
    except ValueError as exc:
        raise ValueError(f"app.config STREAMING_*: {exc}") from None


class Streaming:
    """Flask extension: app-wide streaming defaults, so views call ``sse_response(chain, input)`` bare.

    ``Streaming(app, heartbeat_seconds=10)`` or ``streaming.init_app(app)`` in
    a factory. ``app.config`` keys ``STREAMING_HEARTBEAT_SECONDS``,
    ``STREAMING_RETRY_MS``, ``STREAMING_MAX_STREAM_SECONDS`` and
    ``STREAMING_WATCH_DISCONNECT`` override the constructor's values.
    Callbacks run on every stream, wrapped so they cannot cut it; async
    handlers are refused here, at start-up.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        heartbeat_seconds: float = 15.0,
        retry_ms: int = 3000,
        max_stream_seconds: float | None = 300.0,
        watch_disconnect: bool = True,
        shutdown_notice: bool = True,
        send_timeout_seconds: float | None = 30.0,
        send_buffer_bytes: int = 65_536,
        max_concurrent_streams: int = 0,
        max_streams_per_client: int = 0,
        max_stream_events: int | None = 50_000,
        max_stream_bytes: int | None = 8 * 1_048_576,
        on_disconnect: str = "cancel",
        resume_grace_seconds: float = 15.0,
        callbacks: Sequence[BaseCallbackHandler] = (),
        metadata: Mapping[str, Any] | None = None,
        store: EventLogStore | None = None,
        owner: Callable[[], str | None] = _no_owner,
        client: Callable[[], str | None] = _remote_address,
    ) -> None:
        if on_disconnect not in DISCONNECT_POLICIES:
            raise ValueError(f"on_disconnect={on_disconnect!r}: must be one of {', '.join(DISCONNECT_POLICIES)}")
        self.on_disconnect = on_disconnect
        self.resume_grace_seconds = resume_grace_seconds
        self.options = RelayOptions(
            heartbeat_seconds, retry_ms, max_stream_seconds, watch_disconnect, shutdown_notice,
            send_timeout_seconds, send_buffer_bytes, max_stream_events=max_stream_events, max_stream_bytes=max_stream_bytes,
        )
        self.max_concurrent_streams = max_concurrent_streams
        self.max_streams_per_client = max_streams_per_client
        self.callbacks = tuple(check_sync_handlers(callbacks))
        self.metadata = dict(metadata or {})
        self.store = store if store is not None else MemoryStore()
        self.owner = owner
        self.client = client
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        options = _options_from_config(self.options, app.config)
        limits = []
        for key, value in (("STREAMING_MAX_CONCURRENT_STREAMS", self.max_concurrent_streams),
                           ("STREAMING_MAX_STREAMS_PER_CLIENT", self.max_streams_per_client)):
            raw = app.config.get(key, value)
            try:
                limits.append(int(raw))
                StreamLimiter(limits[-1])
            except (TypeError, ValueError):
                raise ValueError(f"{key}={raw!r}: must be a whole number, 0 for no limit") from None
        defaults = StreamingDefaults(
            options, self.callbacks, self.metadata, self.store, StreamLimiter(*limits), self.on_disconnect,
            self.resume_grace_seconds, owner=self.owner, client=self.client,
        )
        app.extensions[EXTENSION_KEY] = defaults
        generations = defaults.generations

        def cancelled_elsewhere(stream_id: str) -> None:
            generation = generations.get(stream_id)
            if generation is not None:
                generation.cancel()

        self.store.watch_cancels(cancelled_elsewhere)


def new_stream_id() -> str:
    return "s_" + secrets.token_hex(8)


def _defaults() -> StreamingDefaults:
    if has_app_context():
        found = current_app.extensions.get(EXTENSION_KEY)
        if isinstance(found, StreamingDefaults):
            return found
    return StreamingDefaults()


def _log_summary(metadata: dict[str, Any], surface: str) -> Any:
    request_id = current_request_id()

    def report(summary: dict[str, Any]) -> None:
        fields = {**summary, "surface": surface, **metadata, "request_id": request_id}
        summary_log.info("stream_summary", extra={"fields": fields, "request_id": request_id})

    return report


def _new_generation(
    defaults: StreamingDefaults,
    options: RelayOptions,
    runnable: Runnable[Any, Any],
    input: Any,
    *,
    run_config: RunnableConfig,
    labels: dict[str, Any],
    kept: bool = True,
) -> Generation:
    """An admitted run and its log: in the store when a client can come back for it (``kept``), else private.

    The run holds an admission slot until it ends. Raises ``StreamRefused``
    when the worker or the client has no slot left. Plain-text and /v1
    responses never show their stream id, so nobody can resume them:
    keeping their events (for the TTL, or in Redis) would only cost memory
    and a store write per token.
    """
    admitted = defaults.limiter.try_acquire(defaults.client())
    if isinstance(admitted, Refusal):
        raise StreamRefused(admitted, max(1, -(-options.retry_ms // 1000)))
    try:
        stream_id = new_stream_id()
        owner = defaults.owner()
        log = defaults.store.create(stream_id, owner) if kept else MemoryEventLog(stream_id, owner)
        generation = Generation(
            runnable, input, log, config=run_config, start_data=labels,
            on_disconnect=defaults.on_disconnect, grace_seconds=defaults.grace_seconds, remote_reader=defaults.store.remote_reader,
            shutdown_notice=options.shutdown_notice,
            budget=RunBudget(options.max_stream_seconds, options.max_stream_events, options.max_stream_bytes),
            on_end=admitted,
        )
    except BaseException:
        admitted()
        raise
    defaults.generations[generation.stream_id] = generation
    return generation


def _new_relay(
    defaults: StreamingDefaults, log: EventLog, options: RelayOptions, surface: str, labels: dict[str, Any], **relay_args: Any
) -> Relay:
    report = _log_summary(labels, surface)
    metrics().stream_started(surface)

    def on_finish(summary: dict[str, Any]) -> None:
        metrics().stream_finished(surface, summary["outcome"])
        metrics().heartbeats.inc(summary.get("heartbeats", 0))
        report(summary)

    return Relay(log, options, client_socket=client_socket(request.environ), on_finish=on_finish, **relay_args)


def _relay(
    runnable: Runnable[Any, Any],
    input: Any,
    surface: str,
    *,
    callbacks: Sequence[BaseCallbackHandler],
    config: RunnableConfig | None,
    metadata: Mapping[str, Any] | None,
    **option_overrides: Any,
) -> Relay:
    """A relay for one response over a new, admitted run; raises ``StreamRefused``."""
    defaults = _defaults()
    options = replace(defaults.options, **{k: v for k, v in option_overrides.items() if v is not None})
    run_config = with_safe_callbacks(config, [*defaults.callbacks, *callbacks])  # refuses async handlers before taking a slot
    labels = {**defaults.metadata, **(metadata or {})}
    resumable = surface == "sse"
    generation = _new_generation(defaults, options, runnable, input, run_config=run_config, labels=labels, kept=resumable)
    return _new_relay(
        defaults, generation.log, options, surface, labels,
        generation=generation, resumable=resumable, move_on_shutdown=resumable and defaults.store.shared,
    )


def start_stream(
    runnable: Runnable[Any, Any],
    input: Any,
    *,
    callbacks: Sequence[BaseCallbackHandler] = (),
    config: RunnableConfig | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """Start a run with no reader yet; readers attach with ``resume_response``. Returns its stream id.

    It holds an admission slot like any run (raises ``StreamRefused`` when
    none is left) and waits ``resume_grace_seconds`` for its first reader,
    then stops.
    """
    defaults = _defaults()
    labels = {**defaults.metadata, **(metadata or {})}
    run_config = with_safe_callbacks(config, [*defaults.callbacks, *callbacks])
    generation = _new_generation(defaults, defaults.options, runnable, input, run_config=run_config, labels=labels)
    generation.start()
    generation.await_reader()
    return generation.stream_id


def _open(stream_id: str) -> tuple[StreamingDefaults, EventLog]:
    """The stream's log, if it exists and belongs to whoever asks; anything else is the same StreamNotFound."""
    defaults = _defaults()
    log = defaults.store.open(stream_id)
    if log is None or log.owner != defaults.owner():
        hint = "" if defaults.store.shared else (
            " With several worker processes or hosts, each keeps its own streams in memory:"
            " set WEBAPP_STREAM_STORE=redis://... so any worker can resume any stream."
        )
        raise StreamNotFound(f"Stream {stream_id} is unknown here or has expired.{hint}")
    return defaults, log


def resume_response(stream_id: str, after: int = -1, *, heartbeat_events: bool = False) -> Response:
    """SSE of every event after sequence number ``after``, then the live tail; starts no new run.

    Raises ``StreamNotFound`` (also for a stream another owner started). A
    client that already has the terminal event gets ``204 No Content``,
    which tells a browser's EventSource to stop.
    """
    defaults, log = _open(stream_id)
    last = log.last()
    if last is not None and last.terminal and last.seq is not None and after >= last.seq:
        return Response(status=204)
    options = replace(defaults.options, heartbeat_events=heartbeat_events)
    metrics().resumes.inc()
    relay = _new_relay(
        defaults, log, options, "sse", dict(defaults.metadata),
        generation=defaults.generations.get(stream_id), after=after, resumable=True, move_on_shutdown=defaults.store.shared,
    )
    return _stream(relay, Relay.sse_frames, "text/event-stream")


def stream_status(stream_id: str) -> dict[str, Any]:
    """``running``, ``completed``, ``failed`` or ``cancelled``, with the event count. Raises ``StreamNotFound``."""
    _, log = _open(stream_id)
    last = log.last()
    status = "running"
    if last is not None and last.terminal:
        kind = last.data.get("error", {}).get("type") if last.kind == "error" else None
        status = "completed" if last.kind == "end" else ("cancelled" if kind == "cancelled" else "failed")
    return {"stream_id": stream_id, "status": status, "events": log.count(), "last_event_id": f"{stream_id}:{last.seq}" if last else None}


def cancel_stream(stream_id: str) -> dict[str, Any]:
    """Stop a run, here or (shared store) in whichever worker runs it. Raises ``StreamNotFound``."""
    defaults, log = _open(stream_id)
    generation = defaults.generations.get(stream_id)
    if generation is not None:
        generation.cancel()
    elif log.finish("error", CANCELLED):
        defaults.store.announce_cancel(stream_id)  # the worker producing it stops at once, even mid-pause
    return stream_status(stream_id)


def refusal_response(refused: StreamRefused, surface: str = "sse") -> Response:
    """503 (the worker is full) or 429 (this client holds its share), with Retry-After; OpenAI's shape on /v1."""
    metrics().stream_rejected(surface)
    refusal = refused.refusal
    if surface == "openai":
        body = {"error": {"message": refusal.message, "type": refusal.reason, "param": None, "code": refusal.reason}}
    else:
        body = {"error": {"type": refusal.reason, "message": refusal.message}}
    response = Response(json.dumps(body), status=refusal.status, mimetype="application/json")
    response.headers["Retry-After"] = str(refused.retry_after)
    return response


class _StreamBody:
    """The response body the WSGI server iterates and closes.

    With ``direct_passthrough`` werkzeug hands the body itself to the
    server, so ``Response.call_on_close`` handlers never run, and closing a
    generator that never started runs none of its code. A response dropped
    before its first byte would leave its run waiting, holding its slot;
    this ``close()`` always runs.
    """

    __slots__ = ("_frames", "_generation")

    def __init__(self, frames: Iterator[bytes], generation: Generation | None) -> None:
        self._frames = frames
        self._generation = generation

    def __iter__(self) -> Iterator[bytes]:
        return self._frames

    def close(self) -> None:
        try:
            self._frames.close()  # type: ignore[attr-defined]
        finally:
            generation = self._generation
            if generation is not None and not generation.started:
                generation.cancel()


def _stream(relay: Relay, body: Callable[[Relay], Iterator[bytes]], mimetype: str) -> Response:
    frames = _StreamBody(stream_with_context(body(relay)), relay.generation)
    response = Response(frames, mimetype=mimetype, headers=STREAM_HEADERS)
    response.direct_passthrough = True
    return response


def sse_response(
    runnable: Runnable[Any, Any],
    input: Any,
    *,
    callbacks: Sequence[BaseCallbackHandler] = (),
    config: RunnableConfig | None = None,
    metadata: Mapping[str, Any] | None = None,
    heartbeat_seconds: float | None = None,
    retry_ms: int | None = None,
    max_stream_seconds: float | None = None,
    watch_disconnect: bool | None = None,
    heartbeat_events: bool | None = None,
) -> Response:
    """Stream ``runnable.stream(input)`` as Server-Sent Events: start, token..., then end or error.

    Each chunk becomes a ``token`` event with its text: message chunks give
    their text content, strings themselves, dicts their ``text``,
    ``content``, ``answer`` or ``output`` value; chunks without text are
    skipped. ``metadata`` adds fields to the ``start`` event and the summary
    log line. Keyword options override the app's defaults for this response.
    """
    try:
        relay = _relay(
            runnable, input, "sse", callbacks=callbacks, config=config, metadata=metadata,
            heartbeat_seconds=heartbeat_seconds, retry_ms=retry_ms,
            max_stream_seconds=max_stream_seconds, watch_disconnect=watch_disconnect, heartbeat_events=heartbeat_events,
        )
    except StreamRefused as refused:
        return refusal_response(refused)
    return _stream(relay, Relay.sse_frames, "text/event-stream")


def text_response(
    runnable: Runnable[Any, Any],
    input: Any,
    *,
    callbacks: Sequence[BaseCallbackHandler] = (),
    config: RunnableConfig | None = None,
    metadata: Mapping[str, Any] | None = None,
    max_stream_seconds: float | None = None,
    watch_disconnect: bool | None = None,
) -> Response:
    """Stream ``runnable.stream(input)`` as plain text; a failure truncates the transfer.

    No heartbeats and no end marker: clients tell completion from a cut only
    by the chunked terminator. Prefer ``sse_response`` where you can.
    """
    try:
        relay = _relay(
            runnable, input, "text", callbacks=callbacks, config=config, metadata=metadata,
            max_stream_seconds=max_stream_seconds, watch_disconnect=watch_disconnect,
        )
    except StreamRefused as refused:
        return refusal_response(refused, "text")
    return _stream(relay, Relay.text_chunks, "text/plain")


def openai_response(
    runnable: Runnable[Any, Any],
    input: Any,
    *,
    model: str,
    include_usage: bool = False,
    callbacks: Sequence[BaseCallbackHandler] = (),
    config: RunnableConfig | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Response:
    """Stream as OpenAI ``chat.completion.chunk`` frames ending in ``[DONE]`` (heartbeats are comments)."""
    try:
        relay = _relay(runnable, input, "openai", callbacks=callbacks, config=config, metadata=metadata)
    except StreamRefused as refused:
        return refusal_response(refused, "openai")
    chunks = ChunkFormat(f"chatcmpl-{relay.stream_id}", model, int(time.time()), include_usage)
    return _stream(relay, lambda r: r.frames(chunks.frame), "text/event-stream")
