"""Django: ``sse_response(request, runnable, input)`` and ``text_response(...)`` from a view.

Each returns a ``StreamingHttpResponse`` that streams the run as it
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
from typing import Any, Mapping, Sequence

from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables import Runnable, RunnableConfig

from uncut.options import StreamOptions
from uncut.relay import Relay
from uncut.streams import CONTENT_TYPES, StreamRefused, Streams, headers_for
from uncut.telemetry import metrics
from uncut.threads import NOTHING, ThreadError
from uncut.ui_request import UIChatRequest

__all__ = ["thread_response", "ui_thread_response", "sse_response", "text_response", "ui_message_response", "resume_ui_message_response", "streams"]

OBJECTS = ("STORE", "LEASES", "CALLBACKS", "METADATA")  # settings.UNCUT keys that are objects, not options
_GZIP = re.compile(r"\s*(x-)?gzip\s*(;[^,]*)?,?", re.IGNORECASE)


@lru_cache(maxsize=1)
def streams() -> Streams:
    """The project's streaming state, built from ``settings.UNCUT`` on first use."""
    configured: Mapping[str, Any] = getattr(settings, "UNCUT", {}) or {}
    options = StreamOptions.from_mapping(StreamOptions(), {k: v for k, v in configured.items() if k not in OBJECTS})
    return Streams(
        options, store=configured.get("STORE"), leases=configured.get("LEASES"), callbacks=configured.get("CALLBACKS", ()), metadata=configured.get("METADATA"),
    )


def _refused(refused: StreamRefused, surface: str) -> HttpResponse:
    metrics().stream_rejected(surface)
    response = HttpResponse(refused.body(surface), status=refused.refusal.status, content_type="application/json")
    for name, value in refused.headers():
        response[name] = value
    return response


def _stream(request: HttpRequest, surface: str, runnable: Runnable[Any, Any], input: Any, owner: str | None,
            client: str | None, **kwargs: Any) -> HttpResponse:
    try:
        relay = streams().run(runnable, input, surface=surface, environ=request.META, owner=owner,
                              client=client if client is not None else request.META.get("REMOTE_ADDR"), **kwargs)
    except StreamRefused as refused:
        return _refused(refused, surface)
    return _streaming(request, relay, surface)


def _streaming(request: HttpRequest, relay: Relay, surface: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(Streams.body(relay, surface), content_type=CONTENT_TYPES[surface])
    for name, value in headers_for(surface):
        response[name] = value
    # GZipMiddleware reads the request's Accept-Encoding in process_response: without gzip there, it passes.
    accepted = request.META.get("HTTP_ACCEPT_ENCODING", "")
    if accepted:
        request.META["HTTP_ACCEPT_ENCODING"] = _GZIP.sub("", accepted).strip(" ,")
    return response


def sse_response(
    request: HttpRequest,
    runnable: Runnable[Any, Any],
    input: Any,
    *,
    owner: str | None = None,
    client: str | None = None,
    callbacks: Sequence[BaseCallbackHandler] = (),
    config: RunnableConfig | None = None,
    metadata: Mapping[str, Any] | None = None,
    **options: Any,
) -> HttpResponse:
    """Stream ``runnable.stream(input)`` as Server-Sent Events: start, tokens and tool events, then end or error.

    ``owner`` (who may follow or cancel the run later) and ``client``
    (whose share of admission it takes; default the peer address) are the
    view's to say; keyword ``options`` override ``settings.UNCUT``.
    """
    return _stream(request, "sse", runnable, input, owner, client, callbacks=callbacks, config=config, metadata=metadata, **options)


def thread_response(
    request: HttpRequest,
    graph: Runnable[Any, Any],
    thread_id: str,
    *,
    input: Any = NOTHING,
    resume: Any = NOTHING,
    reject_pending: bool = False,
    owner: str | None = None,
    client: str | None = None,
    callbacks: Sequence[BaseCallbackHandler] = (),
    config: RunnableConfig | None = None,
    metadata: Mapping[str, Any] | None = None,
    **options: Any,
) -> HttpResponse:
    """Run ``graph`` on its thread as Server-Sent Events (``Streams.run_thread``); a refused turn is a JSON 4xx."""
    try:
        relay = streams().run_thread(
            graph, thread_id, input=input, resume=resume, reject_pending=reject_pending, config=config, surface="sse",
            environ=request.META, owner=owner, client=client if client is not None else request.META.get("REMOTE_ADDR"),
            callbacks=callbacks, metadata=metadata, **options,
        )
    except ThreadError as refused:
        return HttpResponse(json.dumps(refused.body()), status=refused.status, content_type="application/json")
    except StreamRefused as refused:
        return _refused(refused, "sse")
    return _streaming(request, relay, "sse")


def text_response(
    request: HttpRequest,
    runnable: Runnable[Any, Any],
    input: Any,
    *,
    owner: str | None = None,
    client: str | None = None,
    callbacks: Sequence[BaseCallbackHandler] = (),
    config: RunnableConfig | None = None,
    metadata: Mapping[str, Any] | None = None,
    **options: Any,
) -> HttpResponse:
    """Stream the text alone; a failure ends the transfer without its terminator (a visible cut)."""
    return _stream(request, "text", runnable, input, owner, client, callbacks=callbacks, config=config, metadata=metadata, **options)


def ui_message_response(
    request: HttpRequest,
    runnable: Runnable[Any, Any],
    input: Any,
    *,
    chat_id: str | None = None,
    owner: str | None = None,
    client: str | None = None,
    callbacks: Sequence[BaseCallbackHandler] = (),
    config: RunnableConfig | None = None,
    metadata: Mapping[str, Any] | None = None,
    **options: Any,
) -> HttpResponse:
    """Stream as the Vercel AI SDK's UI message stream (``useChat``); with ``chat_id``, resumable by it.

    ``uncut.ui_request.parse_ui_chat`` turns the SDK's request body into messages.
    """
    return _stream(request, "ui", runnable, input, owner, client, chat_id=chat_id, callbacks=callbacks, config=config,
                   metadata=metadata, **options)


def ui_thread_response(
    request: HttpRequest,
    graph: Runnable[Any, Any],
    chat: UIChatRequest,
    *,
    thread_id: str | None = None,
    owner: str | None = None,
    client: str | None = None,
    callbacks: Sequence[BaseCallbackHandler] = (),
    config: RunnableConfig | None = None,
    metadata: Mapping[str, Any] | None = None,
    **options: Any,
) -> HttpResponse:
    """An AI SDK chat kept on ``graph``'s thread, approvals and all (``Streams.run_chat_thread``); a refused turn is a JSON 4xx."""
    try:
        relay = streams().run_chat_thread(
            graph, chat, thread_id=thread_id, owner=owner, config=config, environ=request.META,
            client=client if client is not None else request.META.get("REMOTE_ADDR"), callbacks=callbacks, metadata=metadata, **options,
        )
    except ThreadError as refused:
        return HttpResponse(json.dumps(refused.body()), status=refused.status, content_type="application/json")
    except StreamRefused as refused:
        return _refused(refused, "ui")
    return _streaming(request, relay, "ui")


def resume_ui_message_response(
    request: HttpRequest, chat_id: str, *, owner: str | None = None, client: str | None = None,
) -> HttpResponse:
    """The chat's latest stream replayed and followed (the AI SDK's ``resume``), or 204 when there is none.

    A reader takes a place of ``client``'s (default the peer address): past
    ``max_readers_per_client``, ``429 too_many_readers``.
    """
    try:
        relay = streams().follow_chat(
            chat_id, environ=request.META, owner=owner, client=client if client is not None else request.META.get("REMOTE_ADDR"),
        )
    except StreamRefused as refused:
        return _refused(refused, "ui")
    return HttpResponse(status=204) if relay is None else _streaming(request, relay, "ui")
