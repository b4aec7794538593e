"""Which of the service's requests start a run, for the admission gate (uncut.gate) in front of Flask.

The gate sees only the WSGI environ, so the rule is written from the method,
the path and two resume markers. A request it misses is still admitted,
only later and dearer: in the view, where every run takes its slot.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping
from urllib.parse import parse_qs

from flask import Flask

from uncut.flask import EXTENSION_KEY
from uncut.gate import AdmissionGate
from uncut.telemetry import metrics
from webapp import browser
from webapp.auth import ApiKeys
from webapp.identity import gate_identity

# POST to any of these starts a run; so does a GET of GET_STARTS that resumes nothing.
RUN_PATHS = frozenset(
    {
        "/api/chat",
        "/api/chat/stream",
        "/api/chat/events",
        "/api/agent/events",
        "/api/ui/chat",
        "/api/streams",
        "/v1/chat/completions",
        "/v1/responses",
    }
)
GET_STARTS = ("/api/chat/events", "/api/diagnostics/stream")  # EventSource can only GET


def starts_run(environ: Mapping[str, Any]) -> bool:
    path = str(environ.get("PATH_INFO", "")).rstrip("/") or "/"
    method = environ.get("REQUEST_METHOD")
    if method == "POST":
        return path in RUN_PATHS
    if method == "GET" and path in GET_STARTS:
        resumes = environ.get("HTTP_LAST_EVENT_ID") or "last_event_id" in parse_qs(str(environ.get("QUERY_STRING", "")))
        return not resumes
    return False


def _surface(environ: Mapping[str, Any]) -> str:
    return "openai" if str(environ.get("PATH_INFO", "")).startswith("/v1/") else "sse"


def install(app: Flask, keys: ApiKeys, address_header: str | None, cors_origins: tuple[str, ...]) -> None:
    """Put the gate in front of ``app``; with keys on, only a request with a valid key takes a place (others get their 401)."""
    client = gate_identity(keys, address_header)

    def gated(environ: Mapping[str, Any]) -> bool:
        return starts_run(environ) and (not keys or client(environ) is not None)

    def limiter() -> Any:
        return app.extensions[EXTENSION_KEY].streams.limiter

    def counted(_refusal: Any, environ: Mapping[str, Any]) -> None:
        metrics().stream_rejected(_surface(environ))

    wrapped: Callable[..., Any] = app.wsgi_app
    gate = AdmissionGate(wrapped, limiter, starts_run=gated, client=client, on_refusal=counted, headers=browser.gate_headers(cors_origins))
    # Flask's documented way to add WSGI middleware; its stubs type wsgi_app as a method only.
    app.wsgi_app = gate  # type: ignore[method-assign]
