"""Plain WSGI: ``sse_response(environ, start_response, runnable, input)`` for Bottle, Pyramid, Falcon or a bare callable.

Each returns the iterable a WSGI server sends; its ``close()`` (which
every WSGI server calls, also when the client has gone) applies the
disconnect policy. App-wide state is a ``Streams``: pass your own
(``streams=``) or use the process's default, built with the library's
defaults on first use.
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Unpack
from urllib.parse import parse_qs

from langchain_core.runnables import Runnable

from uncut.errors import StreamNotFound, StreamRefused
from uncut.gate import refusal_response as gate_refusal
from uncut.leases import LEASE_TTL_SECONDS
from uncut.options import StreamArgs
from uncut.relay import Relay
from uncut.replies import Whole, whole_answer, whole_completion, whole_response
from uncut.streams import CONTENT_TYPES, Streams, headers_for
from uncut.telemetry import metrics
from uncut.threads import NOTHING, ThreadError
from uncut.ui_request import UIChatRequest

if TYPE_CHECKING:
    from uncut.agent_server import AgentServer, Reply

__all__ = [
    "StreamArgs",
    "StreamNotFound",
    "StreamRefused",
    "agent_server_app",
    "answer_response",
    "cancel_stream",
    "default_streams",
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

StartResponse = Callable[..., Any]
_default: Streams | None = None


def default_streams() -> Streams:
    """The process's ``Streams`` for calls that pass none, built with the library's defaults on first use."""
    global _default
    if _default is None:
        _default = Streams()
    return _default


def refusal_response(start_response: StartResponse, refused: StreamRefused | ThreadError, surface: str = "sse") -> Iterable[bytes]:
    """A refused run or reader as its JSON response, before any byte is streamed; every adapter has one.

    ``StreamRefused``: ``503`` (the worker is full) or ``429`` (this client
    holds its share), with ``Retry-After``, in OpenAI's shape on the /v1
    surfaces (``openai``, ``responses``). ``ThreadError``: its 4xx and
    ``{"error": {"type", ...}}`` (a busy thread, nothing to resume...).
    """
    if isinstance(refused, ThreadError):
        body = json.dumps(refused.body(), ensure_ascii=False).encode()
        start_response(_status(refused.status), [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    metrics().stream_rejected(surface)
    return gate_refusal(start_response, refused.refusal, surface in ("openai", "responses"))


def _status(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Unknown"


def _who(environ: Mapping[str, Any], args: StreamArgs) -> dict[str, Any]:
    """The call's keywords, with the peer address as ``client`` where the call names none."""
    client = args.get("client")
    return {**args, "client": client if client is not None else environ.get("REMOTE_ADDR")}


def _body_of(start_response: StartResponse, surface: str, run: Callable[[], Relay], **body_args: Any) -> Iterable[bytes]:
    """A run's body, or its refusal: a JSON 4xx for a thread's state, 503/429 for admission."""
    try:
        relay = run()
    except (ThreadError, StreamRefused) as refused:
        return refusal_response(start_response, refused, surface)
    start_response("200 OK", [("Content-Type", CONTENT_TYPES[surface]), *headers_for(surface)])
    return Streams.body(relay, surface, **body_args)


def _run(
    environ: Mapping[str, Any],
    surface: str,
    runnable: Runnable[Any, Any],
    input: Any,
    streams: Streams | None,
    args: StreamArgs,
    **extra: Any,
) -> Callable[[], Relay]:
    hub = streams or default_streams()
    return lambda: hub.stream(runnable, input, surface=surface, environ=environ, **_who(environ, args), **extra)


def _stream(
    environ: Mapping[str, Any],
    start_response: StartResponse,
    surface: str,
    runnable: Runnable[Any, Any],
    input: Any,
    streams: Streams | None,
    args: StreamArgs,
    **extra: Any,
) -> Iterable[bytes]:
    return _body_of(start_response, surface, _run(environ, surface, runnable, input, streams, args, **extra))


def _gathered(start_response: StartResponse, surface: str, run: Callable[[], Relay], gather: Callable[[Relay], Whole]) -> Iterable[bytes]:
    """A run gathered whole into its JSON reply, or its refusal."""
    try:
        relay = run()
    except StreamRefused as refused:
        return refusal_response(start_response, refused, surface)
    whole = gather(relay)
    body = json.dumps(whole.body, ensure_ascii=False).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *whole.headers.items()]
    start_response(_status(whole.status), headers)
    return [body]


def sse_response(
    environ: Mapping[str, Any],
    start_response: StartResponse,
    runnable: Runnable[Any, Any],
    input: Any,
    *,
    streams: Streams | None = None,
    **args: Unpack[StreamArgs],
) -> Iterable[bytes]:
    """Stream ``runnable.stream(input)`` as Server-Sent Events; returns the WSGI body.

    ``streams`` is the app's (default: ``default_streams()``); the other
    keywords are ``uncut.options.StreamArgs``.
    """
    return _stream(environ, start_response, "sse", runnable, input, streams, args)


def thread_response(
    environ: Mapping[str, Any],
    start_response: StartResponse,
    graph: Runnable[Any, Any],
    thread_id: str,
    *,
    input: Any = NOTHING,
    resume: Any = NOTHING,
    reject_pending: bool = False,
    lease_seconds: float = LEASE_TTL_SECONDS,
    streams: Streams | None = None,
    **args: Unpack[StreamArgs],
) -> Iterable[bytes]:
    """Run ``graph`` on its thread as Server-Sent Events (``Streams.stream_thread``); a refused turn is a JSON 4xx."""
    hub = streams or default_streams()
    return _body_of(
        start_response,
        "sse",
        lambda: hub.stream_thread(
            graph,
            thread_id,
            input=input,
            resume=resume,
            reject_pending=reject_pending,
            surface="sse",
            environ=environ,
            lease_seconds=lease_seconds,
            **_who(environ, args),
        ),
    )


def ui_thread_response(
    environ: Mapping[str, Any],
    start_response: StartResponse,
    graph: Runnable[Any, Any],
    chat: UIChatRequest,
    *,
    thread_id: str | None = None,
    lease_seconds: float = LEASE_TTL_SECONDS,
    streams: Streams | None = None,
    **args: Unpack[StreamArgs],
) -> Iterable[bytes]:
    """An AI SDK chat kept on ``graph``'s thread, approvals and all (``Streams.stream_chat_thread``); a refused turn is a JSON 4xx."""
    hub = streams or default_streams()
    return _body_of(
        start_response,
        "ui",
        lambda: hub.stream_chat_thread(
            graph,
            chat,
            thread_id=thread_id,
            environ=environ,
            lease_seconds=lease_seconds,
            **_who(environ, args),
        ),
    )


def text_response(
    environ: Mapping[str, Any],
    start_response: StartResponse,
    runnable: Runnable[Any, Any],
    input: Any,
    *,
    streams: Streams | None = None,
    **args: Unpack[StreamArgs],
) -> Iterable[bytes]:
    """Stream the text alone; a failure ends the transfer without its terminator (a visible cut)."""
    return _stream(environ, start_response, "text", runnable, input, streams, args)


def ui_message_response(
    environ: Mapping[str, Any],
    start_response: StartResponse,
    runnable: Runnable[Any, Any],
    input: Any,
    *,
    chat_id: str | None = None,
    streams: Streams | None = None,
    **args: Unpack[StreamArgs],
) -> Iterable[bytes]:
    """Stream as the Vercel AI SDK's UI message stream (``useChat``); with ``chat_id``, resumable by it."""
    return _stream(environ, start_response, "ui", runnable, input, streams, args, chat_id=chat_id)


def resume_ui_message_response(
    environ: Mapping[str, Any],
    start_response: StartResponse,
    chat_id: str,
    *,
    streams: Streams | None = None,
    owner: str | None = None,
    client: str | None = None,
) -> Iterable[bytes]:
    """The chat's latest stream replayed and followed (the AI SDK's ``resume``), or 204 when there is none.

    A reader takes a place of ``client``'s (default the peer address): past
    ``max_readers_per_client``, ``429 too_many_readers``.
    """
    try:
        relay = (streams or default_streams()).follow_chat(chat_id, environ=environ, **_who(environ, {"owner": owner, "client": client}))
    except StreamRefused as refused:
        return refusal_response(start_response, refused, "ui")
    if relay is None:
        start_response("204 No Content", [])
        return []
    start_response("200 OK", [("Content-Type", CONTENT_TYPES["ui"]), *headers_for("ui")])
    return Streams.body(relay, "ui")


def openai_response(
    environ: Mapping[str, Any],
    start_response: StartResponse,
    runnable: Runnable[Any, Any],
    input: Any,
    *,
    model: str,
    include_usage: bool = False,
    stream: bool = True,
    streams: Streams | None = None,
    **args: Unpack[StreamArgs],
) -> Iterable[bytes]:
    """OpenAI ``chat.completion.chunk`` frames ending in ``[DONE]``; with ``stream=False``, the whole ``chat.completion``."""
    run = _run(environ, "openai", runnable, input, streams, args)
    if stream:
        return _body_of(start_response, "openai", run, model=model, include_usage=include_usage)
    return _gathered(start_response, "openai", run, lambda relay: whole_completion(relay, model))


def responses_response(
    environ: Mapping[str, Any],
    start_response: StartResponse,
    runnable: Runnable[Any, Any],
    input: Any,
    *,
    echo: Mapping[str, Any],
    stream: bool = True,
    streams: Streams | None = None,
    **args: Unpack[StreamArgs],
) -> Iterable[bytes]:
    """OpenAI's Responses API events; with ``stream=False``, the final Response object (``echo``: the fields it repeats)."""
    run = _run(environ, "responses", runnable, input, streams, args)
    if stream:
        return _body_of(start_response, "responses", run, echo=echo)
    return _gathered(start_response, "responses", run, lambda relay: whole_response(relay, echo))


def answer_response(
    environ: Mapping[str, Any],
    start_response: StartResponse,
    runnable: Runnable[Any, Any],
    input: Any,
    *,
    streams: Streams | None = None,
    **args: Unpack[StreamArgs],
) -> Iterable[bytes]:
    """One whole answer as JSON, ``{"text", "finish_reason", "usage"}``; a failure is its error body and status."""
    return _gathered(start_response, "answer", _run(environ, "answer", runnable, input, streams, args), whole_answer)


def start_stream(
    environ: Mapping[str, Any],
    runnable: Runnable[Any, Any],
    input: Any,
    *,
    streams: Streams | None = None,
    **args: Unpack[StreamArgs],
) -> str:
    """Start a run with no reader yet; readers attach with ``resume_response``. Returns its stream id; raises ``StreamRefused``."""
    return (streams or default_streams()).start(runnable, input, environ=environ, **_who(environ, args))


def resume_response(
    environ: Mapping[str, Any],
    start_response: StartResponse,
    stream_id: str,
    after: int = -1,
    *,
    heartbeat_events: bool = False,
    streams: Streams | None = None,
    owner: str | None = None,
    client: str | None = None,
) -> Iterable[bytes]:
    """SSE of every event after ``after``, then the live tail; 204 when the client has it all. Raises ``StreamNotFound``."""
    try:
        relay = (streams or default_streams()).follow(
            stream_id,
            after,
            environ=environ,
            heartbeat_events=heartbeat_events,
            **_who(environ, {"owner": owner, "client": client}),
        )
    except StreamRefused as refused:
        return refusal_response(start_response, refused)
    if relay is None:
        start_response("204 No Content", [])
        return []
    start_response("200 OK", [("Content-Type", CONTENT_TYPES["sse"]), *headers_for("sse")])
    return Streams.body(relay, "sse")


def stream_status(stream_id: str, *, streams: Streams | None = None, owner: str | None = None) -> dict[str, Any]:
    """``running``, ``completed``, ``failed`` or ``cancelled``, with the event count. Raises ``StreamNotFound``."""
    return (streams or default_streams()).status(stream_id, owner=owner)


def cancel_stream(stream_id: str, *, streams: Streams | None = None, owner: str | None = None) -> dict[str, Any]:
    """Stop a run, here or (shared store) in whichever worker runs it. Raises ``StreamNotFound``."""
    return (streams or default_streams()).cancel(stream_id, owner=owner)


def agent_server_app(
    server: "AgentServer | Callable[[], AgentServer]",
    *,
    owner: Callable[[Mapping[str, Any]], str | None] | None = None,
    prefix: str = "",
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The Agent Server API (uncut.agent_server) as a WSGI app: LangGraph's SDKs talk to its root, or to ``prefix``.

    Mount it whole, or under ``prefix`` (``"/langgraph"``: other paths are a
    JSON 404). ``server`` may be a callable that builds it, called once at
    the first request (after a gunicorn fork). ``owner(environ)`` names the
    caller (an API key id): threads and runs are their owner's, and
    ``None`` means one shared owner.
    """
    from uncut.agent_server import ApiRequest, Reply
    from uncut.agent_server.server import MAX_BODY_BYTES

    current = built_once(server)
    prefix = prefix.rstrip("/")

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = _wsgi_text(environ.get("PATH_INFO") or "/")
        if prefix and path != prefix and not path.startswith(prefix + "/"):
            return _reply(start_response, Reply(404, {"detail": f"the Agent Server API is at {prefix}"}))
        api = ApiRequest(
            method=environ.get("REQUEST_METHOD", "GET"),
            path=path[len(prefix) :] or "/",
            query=parse_qs(_wsgi_text(environ.get("QUERY_STRING", "")), keep_blank_values=True),
            headers=_headers(environ),
            body=_body(environ, MAX_BODY_BYTES + 1),  # one byte over the limit: the server answers 413
            owner=(owner(environ) if owner is not None else None) or "public",
            environ=environ,
            client=environ.get("REMOTE_ADDR"),
        )
        return _reply(start_response, current().handle(api))

    return app


def built_once(server: Any) -> Callable[[], "AgentServer"]:
    """``server``, or what its builder returns the first time (one build, also when two first requests race)."""
    from uncut.agent_server import AgentServer

    if isinstance(server, AgentServer):
        return lambda: server
    built: list[AgentServer] = []
    lock = threading.Lock()

    def current() -> AgentServer:
        if not built:
            with lock:
                if not built:
                    built.append(server())
        return built[0]

    return current


def _reply(start_response: StartResponse, reply: "Reply") -> Iterable[bytes]:
    status = _status(reply.status)
    if reply.streaming:
        start_response(status, [("Content-Type", reply.content_type), *reply.headers])
        return reply.stream_body()  # the server's close() runs its disconnect policy
    body = reply.json_bytes()
    typed = [("Content-Type", reply.content_type), ("Content-Length", str(len(body)))] if reply.status != 204 else []
    start_response(status, [*typed, *reply.headers])
    return [body]


def _wsgi_text(value: str) -> str:
    """A WSGI string (bytes as latin-1, PEP 3333) as the UTF-8 text it carries."""
    return value.encode("latin-1", "replace").decode("utf-8", "replace")


def _headers(environ: Mapping[str, Any]) -> dict[str, str]:
    headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
    for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(name):
            headers[name.replace("_", "-").lower()] = environ[name]
    return headers


def _body(environ: Mapping[str, Any], limit: int) -> bytes:
    """At most ``limit`` bytes of the request body: by its Content-Length, or (chunked) to its end if the server marks one."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > 0:
        body: bytes = stream.read(min(length, limit))
    else:
        body = stream.read(limit) if environ.get("wsgi.input_terminated") else b""
    return body
