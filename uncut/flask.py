"""Flask: ``sse_response(runnable, input)`` from a view, and the ``Streaming`` extension for app-wide defaults.

Call them from a view after reading the request::

    @app.post("/summarize")
    def summarize():
        doc = request.get_json()["doc"]
        return sse_response(prompt | llm | StrOutputParser(), {"doc": doc})

They decide everything (ids, options, callbacks, headers) before the first
byte and return a ``Response`` whose body is a ``stream_with_context``
generator around the relay. App-wide defaults come from the ``Streaming``
extension when the app has one (``app.config`` keys ``UNCUT_<OPTION>``
override its arguments), else from ``StreamOptions()``: a plain
``Flask(__name__)`` app that only imports these functions streams correctly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence, Unpack

from flask import Flask, Response, current_app, has_app_context, has_request_context, request, stream_with_context
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables import Runnable

from uncut.callbacks import check_sync_handlers
from uncut.errors import StreamNotFound, StreamRefused
from uncut.leases import LEASE_TTL_SECONDS, LeaseStore
from uncut.options import OptionError, StreamArgs, StreamOptions
from uncut.relay import Relay
from uncut.replies import Whole, whole_answer, whole_completion, whole_response
from uncut.streams import CONTENT_TYPES, EventLogStore, Streams, headers_for, log_summary
from uncut.telemetry import metrics, otel_switch
from uncut.threads import NOTHING, ThreadError
from uncut.ui_request import UIChatRequest

if TYPE_CHECKING:
    from flask import Blueprint

    from uncut.agent_server import AgentServer

__all__ = [
    "CONFIG_PREFIX",
    "EXTENSION_KEY",
    "StreamArgs",
    "StreamNotFound",
    "StreamRefused",
    "Streaming",
    "agent_server_blueprint",
    "answer_response",
    "cancel_stream",
    "current_streams",
    "openai_response",
    "refusal_response",
    "responses_response",
    "resume_response",
    "resume_ui_message_response",
    "sse_response",
    "start_stream",
    "stream_status",
    "text_response",
    "thread_response",
    "ui_message_response",
    "ui_thread_response",
]

EXTENSION_KEY = "uncut"
CONFIG_PREFIX = "UNCUT_"
OTEL_KEY = "UNCUT_OTEL"  # true: OpenTelemetry traces and GenAI metrics (uncut.otel, uncut[otel])


def _no_owner() -> str | None:
    return None


def _remote_address() -> str | None:
    return request.remote_addr if has_request_context() else None


def _no_fields() -> Mapping[str, Any]:
    return {}


@dataclass(frozen=True)
class _AppStreams:
    """What the extension keeps per app: the core, and who is asking in the current request."""

    streams: Streams
    owner: Callable[[], str | None] = _no_owner
    client: Callable[[], str | None] = _remote_address
    summary_fields: Callable[[], Mapping[str, Any]] = _no_fields


_plain: _AppStreams | None = None


def _current() -> _AppStreams:
    """The app's streaming state; for an app without the extension, one per process with the defaults."""
    global _plain
    if has_app_context():
        found = current_app.extensions.get(EXTENSION_KEY)
        if isinstance(found, _AppStreams):
            return found
    if _plain is None:
        _plain = _AppStreams(Streams())
    return _plain


def current_streams() -> Streams:
    """The app's ``Streams`` (its store, its leases, its limits), for what a view needs beyond the helpers here."""
    return _current().streams


class Streaming:
    """Flask extension: app-wide streaming defaults, so views call ``sse_response(chain, input)`` bare.

    ``Streaming(app, heartbeat_seconds=10)`` or ``streaming.init_app(app)``
    in a factory. Keyword arguments are ``StreamOptions`` fields; the
    ``app.config`` keys ``UNCUT_<FIELD>`` (``UNCUT_HEARTBEAT_SECONDS``...)
    override them, and a bad value stops ``init_app`` naming the key;
    ``UNCUT_OTEL = True`` switches OpenTelemetry on (``uncut.otel``).
    Callbacks run on every stream, wrapped so they cannot cut it; async
    handlers are refused here, at start-up. ``owner`` (who starts a run:
    only they may follow or cancel it), ``client`` (whose share of
    ``max_streams_per_client`` a run takes) and ``summary_fields`` (added
    to each stream's summary) are called in the request that opens a stream.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        callbacks: Sequence[BaseCallbackHandler] = (),
        metadata: Mapping[str, Any] | None = None,
        store: EventLogStore | None = None,
        leases: LeaseStore | None = None,
        owner: Callable[[], str | None] = _no_owner,
        client: Callable[[], str | None] = _remote_address,
        summary_fields: Callable[[], Mapping[str, Any]] = _no_fields,
        on_summary: Callable[[dict[str, Any]], None] = log_summary,
        **options: Any,
    ) -> None:
        self.options = StreamOptions(**options)
        self.callbacks = tuple(check_sync_handlers(callbacks))  # refused at once, not at the first request
        self.metadata = dict(metadata or {})
        self.store = store
        self.leases = leases
        self.owner = owner
        self.client = client
        self.summary_fields = summary_fields
        self.on_summary = on_summary
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        settings = {key: value for key, value in app.config.items() if key != OTEL_KEY}
        try:
            options = StreamOptions.from_mapping(self.options, settings, prefix=CONFIG_PREFIX)
        except OptionError as exc:
            raise ValueError(f"app.config[{exc.name!r}]={exc.value!r}: {exc.rule}") from None
        streams = Streams(
            options, callbacks=self.callbacks, metadata=self.metadata, store=self.store, leases=self.leases, on_summary=self.on_summary
        )
        app.extensions[EXTENSION_KEY] = _AppStreams(streams, self.owner, self.client, self.summary_fields)
        otel_switch(app.config.get(OTEL_KEY), f"app.config[{OTEL_KEY!r}]")


def refusal_response(refused: StreamRefused | ThreadError, surface: str = "sse") -> Response:
    """A refused run or reader as its JSON response, before any byte is streamed; every adapter has one.

    ``StreamRefused``: ``503`` (the worker is full) or ``429`` (this client
    holds its share), with ``Retry-After``, in OpenAI's shape on the /v1
    surfaces (``openai``, ``responses``). ``ThreadError``: its 4xx and
    ``{"error": {"type", ...}}`` (a busy thread, nothing to resume...).
    """
    if isinstance(refused, ThreadError):
        return _json(refused.body(), refused.status)
    metrics().stream_rejected(surface)
    response = Response(refused.body(surface), status=refused.refusal.status, mimetype="application/json")
    for name, value in refused.headers():
        response.headers[name] = value
    return response


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status, mimetype="application/json", headers=dict(headers or {}))


def _whole(whole: Whole) -> Response:
    return _json(whole.body, whole.status, whole.headers)


def _response(relay: Relay, surface: str, **body_args: Any) -> Response:
    body = Streams.body(relay, surface, wrap=stream_with_context, **body_args)
    response = Response(body, content_type=CONTENT_TYPES[surface], headers=headers_for(surface))
    response.direct_passthrough = True  # the body is already bytes; StreamBody.close() still runs
    return response


def _who(state: _AppStreams, args: StreamArgs) -> dict[str, Any]:
    """The call's keywords, with the extension's ``owner()`` and ``client()`` where the call names none."""
    owner, client = args.get("owner"), args.get("client")
    return {**args, "owner": owner if owner is not None else state.owner(), "client": client if client is not None else state.client()}


def _run(runnable: Runnable[Any, Any], input: Any, surface: str, args: StreamArgs, **extra: Any) -> Relay:
    """A run for this request; its owner and client are the call's, else the extension's."""
    state = _current()
    return state.streams.stream(
        runnable,
        input,
        surface=surface,
        environ=request.environ,
        summary_fields=state.summary_fields(),
        **_who(state, args),
        **extra,
    )


def sse_response(runnable: Runnable[Any, Any], input: Any, **args: Unpack[StreamArgs]) -> Response:
    """Stream ``runnable.stream(input)`` (a graph's ``graph.stream()``) as Server-Sent Events.

    ``start``, then ``token``, ``reasoning`` and tool-call events as the
    runnable streams them, then ``end`` or ``error``. ``metadata`` adds
    fields to the ``start`` event and the summary; the other keywords are
    ``uncut.options.StreamArgs`` (options override the app's for this response).
    """
    try:
        relay = _run(runnable, input, "sse", args)
    except StreamRefused as refused:
        return refusal_response(refused)
    return _response(relay, "sse")


def thread_response(
    graph: Runnable[Any, Any],
    thread_id: str,
    *,
    input: Any = NOTHING,
    resume: Any = NOTHING,
    reject_pending: bool = False,
    lease_seconds: float = LEASE_TTL_SECONDS,
    **args: Unpack[StreamArgs],
) -> Response:
    """Run ``graph`` on its thread as Server-Sent Events: a new ``input``, or the ``resume`` answer to its interrupt.

    Checked before the first byte (``Streams.stream_thread``): a busy thread,
    a resume with nothing pending, a new input while an approval waits, or
    an answer that does not fit get a JSON 4xx (``{"error": {"type", ...}}``);
    a full worker gets its 503/429. The graph needs a checkpointer.
    """
    state = _current()
    try:
        relay = state.streams.stream_thread(
            graph,
            thread_id,
            input=input,
            resume=resume,
            reject_pending=reject_pending,
            surface="sse",
            environ=request.environ,
            summary_fields=state.summary_fields(),
            lease_seconds=lease_seconds,
            **_who(state, args),
        )
    except (ThreadError, StreamRefused) as refused:
        return refusal_response(refused)
    return _response(relay, "sse")


def text_response(runnable: Runnable[Any, Any], input: Any, **args: Unpack[StreamArgs]) -> Response:
    """Stream ``runnable.stream(input)`` as plain text; a failure truncates the transfer.

    No heartbeats and no end marker: clients tell completion from a cut only
    by the chunked terminator. Prefer ``sse_response`` where you can.
    """
    try:
        relay = _run(runnable, input, "text", args)
    except StreamRefused as refused:
        return refusal_response(refused, "text")
    return _response(relay, "text")


def openai_response(
    runnable: Runnable[Any, Any],
    input: Any,
    *,
    model: str,
    include_usage: bool = False,
    stream: bool = True,
    **args: Unpack[StreamArgs],
) -> Response:
    """Stream as OpenAI ``chat.completion.chunk`` frames ending in ``[DONE]`` (heartbeats are comments);
    with ``stream=False``, the whole ``chat.completion`` as JSON (a failure is OpenAI's error body and status).

    Either way it is a run: the admission slot, the client's share, the
    deadline, the size caps and the disconnect watch hold.
    """
    try:
        relay = _run(runnable, input, "openai", args)
    except StreamRefused as refused:
        return refusal_response(refused, "openai")
    if stream:
        return _response(relay, "openai", model=model, include_usage=include_usage)
    return _whole(whole_completion(relay, model))


def answer_response(runnable: Runnable[Any, Any], input: Any, **args: Unpack[StreamArgs]) -> Response:
    """One whole answer as JSON, ``{"text", "finish_reason", "usage"}``, for clients that do not stream.

    A run like any stream (admission, share, deadline, caps, disconnect
    watch): a refusal is ``503``/``429``, a failure ``{"error": {"type",
    "message", "retryable"}}`` with its status (``uncut.answers``).
    """
    try:
        relay = _run(runnable, input, "answer", args)
    except StreamRefused as refused:
        return refusal_response(refused, "answer")
    return _whole(whole_answer(relay))


def ui_message_response(runnable: Runnable[Any, Any], input: Any, *, chat_id: str | None = None, **args: Unpack[StreamArgs]) -> Response:
    """Stream as the Vercel AI SDK's UI message stream, for ``useChat`` / ``DefaultChatTransport``.

    With ``chat_id`` (the request body's ``id``), the run becomes the chat's
    latest stream, which ``resume_ui_message_response(chat_id)`` replays:
    the SDK's ``resume``. Chat ids are chosen by the client: the chat is
    ``owner``'s (else the extension's ``owner()``), and only a resume with
    the same owner finds it; give each browser or user its own.
    ``uncut.ui_request.parse_ui_chat`` turns the SDK's request body into
    LangChain messages.
    """
    try:
        relay = _run(runnable, input, "ui", args, chat_id=chat_id)
    except StreamRefused as refused:
        return refusal_response(refused, "ui")
    return _response(relay, "ui")


def ui_thread_response(
    graph: Runnable[Any, Any],
    chat: UIChatRequest,
    *,
    thread_id: str | None = None,
    lease_seconds: float = LEASE_TTL_SECONDS,
    **args: Unpack[StreamArgs],
) -> Response:
    """An AI SDK chat kept on ``graph``'s thread: approvals asked and answered the SDK's way (uncut.ui_threads).

    ``chat`` is ``uncut.ui_request.parse_ui_chat``'s. A run that stops for
    ``HumanInTheLoopMiddleware`` asks with ``tool-approval-request``; the
    chat's next request, carrying the answers, resumes the thread once.
    Refusals (a busy thread, answers that do not fit, nothing to resume)
    are a JSON 4xx before the first byte. The chat is ``owner``'s (else the
    extension's ``owner()``), and so is its thread.
    """
    state = _current()
    try:
        relay = state.streams.stream_chat_thread(
            graph,
            chat,
            thread_id=thread_id,
            environ=request.environ,
            summary_fields=state.summary_fields(),
            lease_seconds=lease_seconds,
            **_who(state, args),
        )
    except (ThreadError, StreamRefused) as refused:
        return refusal_response(refused, "ui")
    return _response(relay, "ui")


def resume_ui_message_response(chat_id: str, *, owner: str | None = None, client: str | None = None) -> Response:
    """The chat's latest stream, replayed from its start then followed live; 204 when there is none.

    That is what the AI SDK's ``reconnectToStream`` (``GET <api>/<chatId>/stream``) expects.
    ``owner`` (else the extension's ``owner()``) is whose chat to look for: another owner's is none.
    A ``client`` (else the extension's ``client()``) holding all the readers it may gets ``429 too_many_readers``.
    """
    state = _current()
    try:
        relay = state.streams.follow_chat(
            chat_id,
            environ=request.environ,
            summary_fields=state.summary_fields(),
            **_who(state, {"owner": owner, "client": client}),
        )
    except StreamRefused as refused:
        return refusal_response(refused, "ui")
    return Response(status=204) if relay is None else _response(relay, "ui")


def responses_response(
    runnable: Runnable[Any, Any],
    input: Any,
    *,
    echo: Mapping[str, Any],
    stream: bool = True,
    **args: Unpack[StreamArgs],
) -> Response:
    """OpenAI's Responses API: events (``response.created`` ... ``response.completed``), or with
    ``stream=False`` the final Response object as JSON (a failure is OpenAI's error body and status).

    ``echo`` holds the request fields the Response object repeats
    (``model``, ``instructions``, ``tools``...).
    """
    try:
        relay = _run(runnable, input, "responses", args)
    except StreamRefused as refused:
        return refusal_response(refused, "responses")
    if stream:
        return _response(relay, "responses", echo=echo)
    return _whole(whole_response(relay, echo))


def start_stream(runnable: Runnable[Any, Any], input: Any, **args: Unpack[StreamArgs]) -> str:
    """Start a run with no reader yet; readers attach with ``resume_response``. Returns its stream id.

    Raises ``StreamRefused`` when no admission slot is left.
    """
    state = _current()
    return state.streams.start(
        runnable,
        input,
        environ=request.environ if has_request_context() else None,
        **_who(state, args),
    )


def resume_response(
    stream_id: str,
    after: int = -1,
    *,
    heartbeat_events: bool = False,
    owner: str | None = None,
    client: str | None = None,
) -> Response:
    """SSE of every event after sequence number ``after``, then the live tail; starts no new run.

    Raises ``StreamNotFound`` (also for someone else's stream). A client
    that already has the terminal event gets ``204 No Content``; one that
    holds all the readers it may, ``429 too_many_readers`` (``503`` when
    the process holds all it may).
    """
    state = _current()
    try:
        relay = state.streams.follow(
            stream_id,
            after,
            environ=request.environ,
            heartbeat_events=heartbeat_events,
            summary_fields=state.summary_fields(),
            **_who(state, {"owner": owner, "client": client}),
        )
    except StreamRefused as refused:
        return refusal_response(refused)
    return Response(status=204) if relay is None else _response(relay, "sse")


def stream_status(stream_id: str, *, owner: str | None = None) -> dict[str, Any]:
    """``running``, ``completed``, ``failed`` or ``cancelled``, with the event count. Raises ``StreamNotFound``.

    ``owner`` (else the extension's ``owner()``) is whose stream to look for.
    """
    state = _current()
    return state.streams.status(stream_id, owner=owner if owner is not None else state.owner())


def cancel_stream(stream_id: str, *, owner: str | None = None) -> dict[str, Any]:
    """Stop a run, here or (shared store) in whichever worker runs it. Raises ``StreamNotFound``.

    ``owner`` (else the extension's ``owner()``) is whose stream to look for.
    """
    state = _current()
    return state.streams.cancel(stream_id, owner=owner if owner is not None else state.owner())


def agent_server_blueprint(
    server: "AgentServer | Callable[[], AgentServer]",
    *,
    name: str = "agent_server",
    url_prefix: str = "/langgraph",
    owner: Callable[[], str | None] | None = None,
) -> "Blueprint":
    """The Agent Server API (uncut.agent_server) as a blueprint: LangGraph's SDKs and ``useStream`` talk to ``url_prefix``.

    ``server`` may be a callable that builds it at first use (after a
    gunicorn fork). ``owner()`` names the caller (an API key id; by default
    the ``Streaming`` extension's); threads and runs are their owner's, and
    ``None`` means one shared owner.
    """
    from flask import Blueprint

    from uncut.agent_server import AgentServer, ApiRequest

    blueprint = Blueprint(name, __name__, url_prefix=url_prefix)
    methods = ["GET", "POST", "PATCH", "PUT", "DELETE"]

    def current() -> AgentServer:
        return server if isinstance(server, AgentServer) else server()

    @blueprint.route("/", defaults={"path": ""}, methods=methods)
    @blueprint.route("/<path:path>", methods=methods)
    def agent_api(path: str) -> Response:
        state = _current()
        api = ApiRequest(
            method=request.method,
            path="/" + path,
            query=request.args.to_dict(flat=False),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=request.get_data(cache=False),
            owner=(owner or state.owner)() or "public",
            environ=request.environ,
            client=state.client(),
        )
        reply = current().handle(api)
        if not reply.streaming:
            return Response(
                reply.json_bytes(),
                status=reply.status,
                headers=reply.headers,
                content_type=None if reply.status == 204 else "application/json",
            )
        response = Response(
            reply.stream_body(stream_with_context), status=reply.status, headers=reply.headers, content_type=reply.content_type
        )
        response.direct_passthrough = True  # the body is already bytes; StreamBody.close() still runs
        return response

    return blueprint
