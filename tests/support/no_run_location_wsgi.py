"""The service with ``Content-Location`` and ``Location`` stripped from every response: the negative control of
tests/e2e/test_agent_server_js.py.

gunicorn imports it in the worker like ``wsgi``. Without those headers
LangGraph's JS SDK never learns a streamed run's id (``onRunCreated``), so
``useStream({reconnectOnMount: true})`` has nothing to rejoin after a reload.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from wsgi import app

STRIPPED = frozenset({"content-location", "location"})


class StripRunLocation:
    """WSGI middleware: the inner app's response, less the headers that say where a run's stream is."""

    def __init__(self, inner: Callable[..., Iterable[bytes]]) -> None:
        self.inner = inner

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, [(k, v) for k, v in headers if k.lower() not in STRIPPED], exc_info)

        return self.inner(environ, start)  # the body as it is: its close() still ends the stream


app.wsgi_app = StripRunLocation(app.wsgi_app)  # type: ignore[method-assign]

__all__ = ["app"]
