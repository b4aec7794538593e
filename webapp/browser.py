"""What browsers need from this API: security headers, no cross-site requests unless allowed, CORS.

Without API keys, any web page could otherwise make its visitors' browsers
start generations here (a cross-site ``GET /api/chat/events?message=...``
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
from urllib.parse import urlsplit

from flask import Flask, Response, g, request
from flask.typing import ResponseReturnValue

from webapp.errors import error_response

OPEN_TO_ANY_SITE = frozenset({"health.healthz", "playground.index"})
ALLOWED_HEADERS = "Authorization, Content-Type, Last-Event-ID"
ALLOWED_METHODS = "GET, POST, DELETE, OPTIONS"
EXPOSED_HEADERS = "Retry-After"
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


def _same_origin(origin: str | None) -> bool:
    if origin is None:
        return False
    host = urlsplit(origin).netloc
    return host in (request.host, request.host.split(":")[0])


def install(app: Flask, allowed_origins: tuple[str, ...]) -> None:
    """Refuse other sites' requests unless allowed, answer CORS for allowed ones, and add security headers."""
    any_origin = "*" in allowed_origins
    listed = frozenset(allowed_origins)

    def allowed(origin: str | None) -> bool:
        return origin is not None and (any_origin or origin in listed)

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
            preflight.headers.update({
                "Access-Control-Allow-Origin": origin, "Access-Control-Allow-Methods": ALLOWED_METHODS,
                "Access-Control-Allow-Headers": ALLOWED_HEADERS, "Access-Control-Max-Age": PREFLIGHT_MAX_AGE, "Vary": "Origin",
            })
            return preflight
        if any_origin or request.endpoint in OPEN_TO_ANY_SITE or not cross_site() or allowed(origin):
            return None
        return error_response(403, "forbidden_origin", "Requests from other sites are refused unless their origin is allowed (WEBAPP_CORS_ORIGINS).")

    def add_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "no-referrer")
        if "csp_nonce" in g:
            headers["Content-Security-Policy"] = _page_policy(g.csp_nonce)
            headers["X-Frame-Options"] = "DENY"
        else:
            headers.setdefault("Content-Security-Policy", API_POLICY)
        origin = request.headers.get("Origin")
        if allowed(origin) and not _same_origin(origin):
            headers["Access-Control-Allow-Origin"] = origin  # type: ignore[assignment]
            headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
            headers.add("Vary", "Origin")
        return response

    app.before_request(check_origin)
    app.after_request(add_headers)
