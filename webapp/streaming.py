"""Flask responses that stream any LangChain Runnable: ``sse_response`` and ``text_response``.

Call them from a view after reading the request: they decide everything
(ids, options, callbacks, headers) before the first byte, and return a
``Response`` whose body is a ``stream_with_context`` generator around the
relay. Defaults come from the app (``app.extensions["webapp.streaming"]``,
set by ``create_app``) or, in any other Flask app, from ``RelayOptions()``.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Sequence

from flask import Response, current_app, has_app_context, request, stream_with_context
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables import Runnable, RunnableConfig

from webapp.callbacks import check_sync_handlers, safe_handlers
from webapp.concurrency import client_socket
from webapp.eventlog import MemoryEventLog
from webapp.generation import Generation
from webapp.relay import Relay, RelayOptions

EXTENSION_KEY = "webapp.streaming"
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

summary_log = logging.getLogger("webapp.stream")


@dataclass(frozen=True)
class StreamingDefaults:
    """App-wide defaults for every streamed response."""

    options: RelayOptions = field(default_factory=RelayOptions)
    callbacks: tuple[BaseCallbackHandler, ...] = ()
    labels: dict[str, Any] = field(default_factory=dict)


def new_stream_id() -> str:
    return "s_" + secrets.token_hex(8)


def _defaults() -> StreamingDefaults:
    if has_app_context():
        found = current_app.extensions.get(EXTENSION_KEY)
        if isinstance(found, StreamingDefaults):
            return found
    return StreamingDefaults()


def _log_summary(labels: dict[str, Any], surface: str) -> Any:
    def report(summary: dict[str, Any]) -> None:
        summary_log.info("stream_summary %s", json.dumps({**summary, "surface": surface, **labels}, sort_keys=True))

    return report


def _relay(
    runnable: Runnable[Any, Any],
    input: Any,
    surface: str,
    *,
    callbacks: Sequence[BaseCallbackHandler],
    config: RunnableConfig | None,
    start_data: dict[str, Any] | None,
    **option_overrides: Any,
) -> Relay:
    defaults = _defaults()
    options = replace(defaults.options, **{k: v for k, v in option_overrides.items() if v is not None})
    handlers = [*defaults.callbacks, *check_sync_handlers(callbacks)]
    run_config: RunnableConfig = dict(config or {})  # type: ignore[assignment]
    run_config["callbacks"] = [*safe_handlers(handlers), *(run_config.get("callbacks") or [])]  # type: ignore[misc]
    labels = {**defaults.labels, **(start_data or {})}
    generation = Generation(runnable, input, MemoryEventLog(new_stream_id()), config=run_config, start_data=labels)
    sock = client_socket(request.environ) if options.watch_disconnect else None
    return Relay(generation, options, client_socket=sock, on_finish=_log_summary(labels, surface))


def _stream(body: Iterator[bytes], mimetype: str) -> Response:
    response = Response(stream_with_context(body), mimetype=mimetype, headers=STREAM_HEADERS)
    response.direct_passthrough = True
    return response


def sse_response(
    runnable: Runnable[Any, Any],
    input: Any,
    *,
    callbacks: Sequence[BaseCallbackHandler] = (),
    config: RunnableConfig | None = None,
    start_data: dict[str, Any] | None = None,
    heartbeat_seconds: float | None = None,
    retry_ms: int | None = None,
    max_stream_seconds: float | None = None,
    watch_disconnect: bool | None = None,
) -> Response:
    """Stream ``runnable.stream(input)`` as Server-Sent Events (start, token..., end | error)."""
    relay = _relay(
        runnable, input, "sse", callbacks=callbacks, config=config, start_data=start_data,
        heartbeat_seconds=heartbeat_seconds, retry_ms=retry_ms,
        max_stream_seconds=max_stream_seconds, watch_disconnect=watch_disconnect,
    )
    return _stream(relay.sse_frames(), "text/event-stream")


def text_response(
    runnable: Runnable[Any, Any],
    input: Any,
    *,
    callbacks: Sequence[BaseCallbackHandler] = (),
    config: RunnableConfig | None = None,
    max_stream_seconds: float | None = None,
    watch_disconnect: bool | None = None,
) -> Response:
    """Stream ``runnable.stream(input)`` as plain text; a failure truncates the transfer."""
    relay = _relay(
        runnable, input, "text", callbacks=callbacks, config=config, start_data=None,
        max_stream_seconds=max_stream_seconds, watch_disconnect=watch_disconnect,
    )
    return _stream(relay.text_chunks(), "text/plain")
