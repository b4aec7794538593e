"""Django: ``sse_response(request, runnable, input)`` and the rest of Flask's functions (``request`` first), from a view.

Each stream is a ``StreamingHttpResponse`` that streams the run as it
happens, watches the client's socket (gunicorn puts it in
``request.META``) and applies the disconnect policy when the server closes
it. App-wide defaults come from ``settings.UNCUT``, a dict of
``StreamOptions`` fields in capitals (``{"HEARTBEAT_SECONDS": 10}``) plus
optional ``STORE``, ``CALLBACKS`` and ``METADATA``.

Django's ``GZipMiddleware`` compresses streaming responses too, and zlib
holds the small writes of a token stream until its buffer fills: the
whole answer then arrives at the end. These responses tell the middleware
that this client takes no gzip (for this request only), so it leaves them
alone; proxies in front must not compress them either (conf/).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Unpack

from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from langchain_core.runnables import Runnable

from uncut.errors import StreamNotFound, StreamRefused
from uncut.leases import LEASE_TTL_SECONDS
from uncut.options import StreamArgs, StreamOptions
from uncut.relay import Relay
from uncut.replies import Whole, whole_answer, whole_completion, whole_response
from uncut.streams import CONTENT_TYPES, Streams, headers_for
from uncut.telemetry import metrics, otel_switch
from uncut.threads import NOTHING, ThreadError
from uncut.ui_request import UIChatRequest

if TYPE_CHECKING:
    from django.urls import URLPattern

    from uncut.agent_server import AgentServer

__all__ = [
    "StreamArgs",
    "StreamNotFound",
    "StreamRefused",
    "agent_server_urls",
    "answer_response",
    "cancel_stream",
    "openai_response",
    "refusal_response",
    "responses_response",
    "resume_response",
    "resume_ui_message_response",
    "sse_response",
    "start_stream",
    "stream_status",
    "streams",
    "text_response",
    "thread_response",
    "ui_message_response",
    "ui_thread_response",
]

OBJECTS = ("STORE", "LEASES", "CALLBACKS", "METADATA", "OTEL")  # settings.UNCUT keys that are not StreamOptions
_GZIP = re.compile(r"\s*(x-)?gzip\s*(;[^,]*)?,?", re.IGNORECASE)


@lru_cache(maxsize=1)
def streams() -> Streams:
    """The project's streaming state, built from ``settings.UNCUT`` on first use."""
    configured: Mapping[str, Any] = getattr(settings, "UNCUT", {}) or {}
    options = StreamOptions.from_mapping(StreamOptions(), {k: v for k, v in configured.items() if k not in OBJECTS})
    otel_switch(configured.get("OTEL"), "settings.UNCUT['OTEL']")
    return Streams(
        options,
        store=configured.get("STORE"),
        leases=configured.get("LEASES"),
        callbacks=configured.get("CALLBACKS", ()),
        metadata=configured.get("METADATA"),
    )


def refusal_response(refused: StreamRefused | ThreadError, surface: str = "sse") -> HttpResponse:
    """A refused run or reader as its JSON response, before any byte is streamed; every adapter has one.

    ``StreamRefused``: ``503`` (the worker is full) or ``429`` (this client
    holds its share), with ``Retry-After``, in OpenAI's shape on the /v1
    surfaces (``openai``, ``responses``). ``ThreadError``: its 4xx and
    ``{"error": {"type", ...}}`` (a busy thread, nothing to resume...).
    """
    if isinstance(refused, ThreadError):
        return HttpResponse(json.dumps(refused.body(), ensure_ascii=False), status=refused.status, content_type="application/json")
    metrics().stream_rejected(surface)
    response = HttpResponse(refused.body(surface), status=refused.refusal.status, content_type="application/json")
    for name, value in refused.headers():
        response[name] = value
    return response


def _who(request: HttpRequest, args: StreamArgs) -> dict[str, Any]:
    """The call's keywords, with the peer address as ``client`` where the call names none."""
    client = args.get("client")
    return {**args, "client": client if client is not None else request.META.get("REMOTE_ADDR")}


def _started(
    request: HttpRequest, surface: str, runnable: Runnable[Any, Any], input: Any, args: StreamArgs, **extra: Any
) -> Relay | HttpResponse:
    """A run for this request, or the response that refuses it."""
    try:
        return streams().stream(runnable, input, surface=surface, environ=request.META, **_who(request, args), **extra)
    except StreamRefused as refused:
        return refusal_response(refused, surface)


def _stream(
    request: HttpRequest,
    surface: str,
    runnable: Runnable[Any, Any],
    input: Any,
    args: StreamArgs,
    body_args: Mapping[str, Any] | None = None,
    **extra: Any,
) -> HttpResponse:
    relay = _started(request, surface, runnable, input, args, **extra)
    return relay if isinstance(relay, HttpResponse) else _streaming(request, relay, surface, **(body_args or {}))


def _whole(whole: Whole) -> HttpResponse:
    response = HttpResponse(json.dumps(whole.body, ensure_ascii=False), status=whole.status, content_type="application/json")
    for name, value in whole.headers.items():
        response[name] = value
    return response


def _streaming(request: HttpRequest, relay: Relay, surface: str, **body_args: Any) -> StreamingHttpResponse:
    return _streaming_body(request, Streams.body(relay, surface, **body_args), CONTENT_TYPES[surface], headers_for(surface))


def _streaming_body(
    request: HttpRequest, body: Iterable[bytes], content_type: str, headers: Iterable[tuple[str, str]], status: int = 200
) -> StreamingHttpResponse:
    # Django keeps the body's close() (StreamBody's) and calls it when the server closes the response.
    response = StreamingHttpResponse(body, status=status, content_type=content_type)
    for name, value in headers:
        response[name] = value
    # GZipMiddleware reads the request's Accept-Encoding in process_response: without gzip there, it passes.
    accepted = request.META.get("HTTP_ACCEPT_ENCODING", "")
    if accepted:
        request.META["HTTP_ACCEPT_ENCODING"] = _GZIP.sub("", accepted).strip(" ,")
    return response


def sse_response(request: HttpRequest, runnable: Runnable[Any, Any], input: Any, **args: Unpack[StreamArgs]) -> HttpResponse:
    """Stream ``runnable.stream(input)`` as Server-Sent Events: start, tokens and tool events, then end or error.

    ``owner`` (who may follow or cancel the run later) and ``client``
    (whose share of admission it takes; default the peer address) are the
    view's to say; the other keywords are ``uncut.options.StreamArgs``
    (options override ``settings.UNCUT``).
    """
    return _stream(request, "sse", runnable, input, args)


def thread_response(
    request: HttpRequest,
    graph: Runnable[Any, Any],
    thread_id: str,
    *,
    input: Any = NOTHING,
    resume: Any = NOTHING,
    reject_pending: bool = False,
    lease_seconds: float = LEASE_TTL_SECONDS,
    **args: Unpack[StreamArgs],
) -> HttpResponse:
    """Run ``graph`` on its thread as Server-Sent Events (``Streams.stream_thread``); a refused turn is a JSON 4xx."""
    try:
        relay = streams().stream_thread(
            graph,
            thread_id,
            input=input,
            resume=resume,
            reject_pending=reject_pending,
            surface="sse",
            environ=request.META,
            lease_seconds=lease_seconds,
            **_who(request, args),
        )
    except (ThreadError, StreamRefused) as refused:
        return refusal_response(refused)
    return _streaming(request, relay, "sse")


def text_response(request: HttpRequest, runnable: Runnable[Any, Any], input: Any, **args: Unpack[StreamArgs]) -> HttpResponse:
    """Stream the text alone; a failure ends the transfer without its terminator (a visible cut)."""
    return _stream(request, "text", runnable, input, args)


def ui_message_response(
    request: HttpRequest,
    runnable: Runnable[Any, Any],
    input: Any,
    *,
    chat_id: str | None = None,
    **args: Unpack[StreamArgs],
) -> HttpResponse:
    """Stream as the Vercel AI SDK's UI message stream (``useChat``); with ``chat_id``, resumable by it.

    ``uncut.ui_request.parse_ui_chat`` turns the SDK's request body into messages.
    """
    return _stream(request, "ui", runnable, input, args, chat_id=chat_id)


def ui_thread_response(
    request: HttpRequest,
    graph: Runnable[Any, Any],
    chat: UIChatRequest,
    *,
    thread_id: str | None = None,
    lease_seconds: float = LEASE_TTL_SECONDS,
    **args: Unpack[StreamArgs],
) -> HttpResponse:
    """An AI SDK chat kept on ``graph``'s thread, approvals and all (``Streams.stream_chat_thread``); a refused turn is a JSON 4xx."""
    try:
        relay = streams().stream_chat_thread(
            graph, chat, thread_id=thread_id, environ=request.META, lease_seconds=lease_seconds, **_who(request, args)
        )
    except (ThreadError, StreamRefused) as refused:
        return refusal_response(refused, "ui")
    return _streaming(request, relay, "ui")


def resume_ui_message_response(
    request: HttpRequest,
    chat_id: str,
    *,
    owner: str | None = None,
    client: str | None = None,
) -> HttpResponse:
    """The chat's latest stream replayed and followed (the AI SDK's ``resume``), or 204 when there is none.

    A reader takes a place of ``client``'s (default the peer address): past
    ``max_readers_per_client``, ``429 too_many_readers``.
    """
    try:
        relay = streams().follow_chat(chat_id, environ=request.META, **_who(request, {"owner": owner, "client": client}))
    except StreamRefused as refused:
        return refusal_response(refused, "ui")
    return HttpResponse(status=204) if relay is None else _streaming(request, relay, "ui")


def openai_response(
    request: HttpRequest,
    runnable: Runnable[Any, Any],
    input: Any,
    *,
    model: str,
    include_usage: bool = False,
    stream: bool = True,
    **args: Unpack[StreamArgs],
) -> HttpResponse:
    """OpenAI ``chat.completion.chunk`` frames ending in ``[DONE]``; with ``stream=False``, the whole ``chat.completion``."""
    if stream:
        return _stream(request, "openai", runnable, input, args, {"model": model, "include_usage": include_usage})
    relay = _started(request, "openai", runnable, input, args)
    return relay if isinstance(relay, HttpResponse) else _whole(whole_completion(relay, model))


def responses_response(
    request: HttpRequest,
    runnable: Runnable[Any, Any],
    input: Any,
    *,
    echo: Mapping[str, Any],
    stream: bool = True,
    **args: Unpack[StreamArgs],
) -> HttpResponse:
    """OpenAI's Responses API events; with ``stream=False``, the final Response object (``echo``: the fields it repeats)."""
    if stream:
        return _stream(request, "responses", runnable, input, args, {"echo": echo})
    relay = _started(request, "responses", runnable, input, args)
    return relay if isinstance(relay, HttpResponse) else _whole(whole_response(relay, echo))


def answer_response(request: HttpRequest, runnable: Runnable[Any, Any], input: Any, **args: Unpack[StreamArgs]) -> HttpResponse:
    """One whole answer as JSON, ``{"text", "finish_reason", "usage"}``; a failure is its error body and status."""
    relay = _started(request, "answer", runnable, input, args)
    return relay if isinstance(relay, HttpResponse) else _whole(whole_answer(relay))


def start_stream(request: HttpRequest, runnable: Runnable[Any, Any], input: Any, **args: Unpack[StreamArgs]) -> str:
    """Start a run with no reader yet; readers attach with ``resume_response``. Returns its stream id; raises ``StreamRefused``."""
    return streams().start(runnable, input, environ=request.META, **_who(request, args))


def resume_response(
    request: HttpRequest,
    stream_id: str,
    after: int = -1,
    *,
    heartbeat_events: bool = False,
    owner: str | None = None,
    client: str | None = None,
) -> HttpResponse:
    """SSE of every event after ``after``, then the live tail; 204 when the client has it all. Raises ``StreamNotFound``."""
    try:
        relay = streams().follow(
            stream_id,
            after,
            environ=request.META,
            heartbeat_events=heartbeat_events,
            **_who(request, {"owner": owner, "client": client}),
        )
    except StreamRefused as refused:
        return refusal_response(refused)
    return HttpResponse(status=204) if relay is None else _streaming(request, relay, "sse")


def stream_status(stream_id: str, *, owner: str | None = None) -> dict[str, Any]:
    """``running``, ``completed``, ``failed`` or ``cancelled``, with the event count. Raises ``StreamNotFound``."""
    return streams().status(stream_id, owner=owner)


def cancel_stream(stream_id: str, *, owner: str | None = None) -> dict[str, Any]:
    """Stop a run, here or (shared store) in whichever worker runs it. Raises ``StreamNotFound``."""
    return streams().cancel(stream_id, owner=owner)


def agent_server_urls(
    server: "AgentServer | Callable[[], AgentServer]",
    *,
    prefix: str = "langgraph/",
    owner: Callable[[HttpRequest], str | None] | None = None,
) -> "list[URLPattern]":
    """The Agent Server API (uncut.agent_server) at ``prefix``: ``urlpatterns += agent_server_urls(server)``.

    LangGraph's SDKs and ``useStream`` then talk to ``https://host/langgraph``.
    ``server`` may be a callable that builds it, called once at the first
    request (after a gunicorn fork); give it ``uncut.django.streams()``.
    ``owner(request)`` names the caller (an API key id): threads and runs
    are their owner's, and ``None`` means one shared owner. The view is
    CSRF-exempt: its clients are API clients, not forms.
    """
    from django.urls import re_path
    from django.views.decorators.csrf import csrf_exempt

    from uncut.agent_server import ApiRequest, Reply
    from uncut.agent_server.server import MAX_BODY_BYTES
    from uncut.wsgi import built_once

    current = built_once(server)
    mount = re.escape(prefix.strip("/"))

    @csrf_exempt  # type: ignore[untyped-decorator]  # django ships no annotations (no django-stubs here)
    def agent_api(request: HttpRequest, path: str = "") -> HttpResponse:
        api = ApiRequest(
            method=request.method or "GET",
            path="/" + path,
            query={k: request.GET.getlist(k) for k in request.GET},
            headers={k.lower(): v for k, v in request.headers.items()},
            body=request.read(MAX_BODY_BYTES + 1),  # one byte over the limit: the server answers 413
            owner=(owner(request) if owner is not None else None) or "public",
            environ=request.META,
            client=request.META.get("REMOTE_ADDR"),
        )
        reply: Reply = current().handle(api)
        if reply.streaming:
            return _streaming_body(request, reply.stream_body(), reply.content_type, reply.headers, reply.status)
        response = HttpResponse(reply.json_bytes(), status=reply.status, content_type=reply.content_type)
        if reply.status == 204:
            del response["Content-Type"]
        for name, value in reply.headers:
            response[name] = value
        return response

    return [re_path(rf"^{mount}(?:/(?P<path>.*))?$" if mount else r"^(?P<path>.*)$", agent_api, name="agent_server")]
