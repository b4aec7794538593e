"""What browsers need from this API: security headers, no cross-site requests unless allowed, CORS.

Without API keys, any web page could otherwise make its visitors' browsers
start streams here (a cross-site ``GET /api/chat/events?message=...``
needs no permission from us). A browser says where a request comes from
(``Sec-Fetch-Site``, ``Origin``); a request from another site is refused
with ``403`` unless its origin is listed in ``WEBAPP_CORS_ORIGINS``, and
listed origins get proper CORS answers, preflights included, so a separate
front-end can call the API. Clients that are not browsers send neither
header and are not affected. The page (``/``) and ``/healthz`` may be
reached from anywhere, as links and probes do.

Every response says ``nosniff``; the page gets a Content-Security-Policy
whose scripts and styles must carry this response's nonce, and may not be
framed.
"""

from __future__ import annotations

import secrets
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from flask import Flask, Response, g, request
from flask.typing import ResponseReturnValue

from webapp.errors import error_response

OPEN_TO_ANY_SITE = frozenset({"health.healthz", "playground.index"})
ALLOWED_HEADERS = "Authorization, Content-Type, Last-Event-ID, X-Api-Key"
ALLOWED_METHODS = "GET, POST, PATCH, PUT, DELETE, OPTIONS"  # PATCH: a thread's metadata (LangGraph's SDKs)
# Content-Location and Location: where LangGraph's SDKs rejoin a run's stream after a cut.
EXPOSED_HEADERS = "Retry-After, retry-after-ms, Content-Location, Location"
PREFLIGHT_MAX_AGE = "600"
API_POLICY = "default-src 'none'; frame-ancestors 'none'"


def page_nonce() -> str:
    """The nonce this response's inline scripts and styles must carry (the page's template uses it)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return str(g.csp_nonce)


def _page_policy(nonce: str) -> str:
    return (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


def _same_origin(origin: str | None, host: str | None = None) -> bool:
    if origin is None:
        return False
    host = request.host if host is None else host
    return urlsplit(origin).netloc in (host, host.split(":")[0])


def _cors(origin: str | None, allowed: bool, host: str | None = None) -> list[tuple[str, str]]:
    if origin is None or not allowed or _same_origin(origin, host):
        return []
    return [("Access-Control-Allow-Origin", origin), ("Access-Control-Expose-Headers", EXPOSED_HEADERS), ("Vary", "Origin")]


API_HEADERS = (("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"), ("Content-Security-Policy", API_POLICY))


def _allowed_origin(allowed_origins: tuple[str, ...]) -> Callable[[str | None], bool]:
    any_origin = "*" in allowed_origins
    listed = frozenset(allowed_origins)
    return lambda origin: origin is not None and (any_origin or origin in listed)


def gate_headers(allowed_origins: tuple[str, ...]) -> Callable[[Mapping[str, Any]], list[tuple[str, str]]]:
    """What ``add_headers`` puts on an API response, from the WSGI environ: for refusals the admission gate answers."""
    allowed = _allowed_origin(allowed_origins)

    def headers(environ: Mapping[str, Any]) -> list[tuple[str, str]]:
        origin = environ.get("HTTP_ORIGIN")
        return [*API_HEADERS, *_cors(origin, allowed(origin), str(environ.get("HTTP_HOST", "")))]

    return headers


def allowed_headers(asked: str | None) -> str:
    """The headers an allowed origin may send: ours, and any it asks for (its SDK's own, e.g. ``x-auth-scheme``)."""
    if not asked:
        return ALLOWED_HEADERS
    names = [name.strip() for name in asked.split(",") if name.strip().replace("-", "").isalnum()]
    return ", ".join(dict.fromkeys([*ALLOWED_HEADERS.split(", "), *names[:32]]))


def install(app: Flask, allowed_origins: tuple[str, ...]) -> None:
    """Refuse other sites' requests unless allowed, answer CORS for allowed ones, and add security headers."""
    any_origin = "*" in allowed_origins
    allowed = _allowed_origin(allowed_origins)

    def cross_site() -> bool:
        site = request.headers.get("Sec-Fetch-Site")
        if site in ("same-origin", "none"):  # the page itself, or a URL the user typed
            return False
        if site in ("cross-site", "same-site"):
            return True
        origin = request.headers.get("Origin")  # an older browser: Origin tells, when it is sent
        return origin is not None and not _same_origin(origin)

    def check_origin() -> ResponseReturnValue | None:
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS" and origin and request.headers.get("Access-Control-Request-Method"):
            if not allowed(origin):
                return error_response(403, "forbidden_origin", "This origin may not call the API (WEBAPP_CORS_ORIGINS).")
            preflight = Response(status=204)
            preflight.headers.update(
                {
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Methods": ALLOWED_METHODS,
                    "Access-Control-Allow-Headers": allowed_headers(request.headers.get("Access-Control-Request-Headers")),
                    "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
                    "Vary": "Origin",
                }
            )
            return preflight
        if any_origin or request.endpoint in OPEN_TO_ANY_SITE or not cross_site() or allowed(origin):
            return None
        return error_response(
            403, "forbidden_origin", "Requests from other sites are refused unless their origin is allowed (WEBAPP_CORS_ORIGINS)."
        )

    def add_headers(response: Response) -> Response:
        headers = response.headers
        if "csp_nonce" in g:
            headers["Content-Security-Policy"] = _page_policy(g.csp_nonce)
            headers["X-Frame-Options"] = "DENY"
        for name, value in API_HEADERS:
            headers.setdefault(name, value)
        origin = request.headers.get("Origin")
        for name, value in _cors(origin, allowed(origin)):
            headers.add(name, value) if name == "Vary" else headers.set(name, value)
        return response

    app.before_request(check_origin)
    app.after_request(add_headers)
