"""Optional API keys: ``Authorization: Bearer <key>`` on every route but ``/healthz``.

Keys are compared in constant time (SHA-256 digests of equal length,
``hmac.compare_digest``, every key checked) and never logged.
"""

from __future__ import annotations

import hashlib
import hmac

from flask import Flask, request
from flask.typing import ResponseReturnValue

from webapp.errors import error_response

OPEN_ENDPOINTS = frozenset({"health.healthz"})


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


def require_api_keys(app: Flask, keys: tuple[str, ...]) -> None:
    """Install the check; with no keys configured, nothing is installed."""
    if not keys:
        return
    digests = [_digest(key) for key in keys]

    def check() -> ResponseReturnValue | None:
        if request.endpoint in OPEN_ENDPOINTS:
            return None
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        offered = _digest(given.strip())
        matched = False
        for digest in digests:  # no early exit: the time does not depend on which key matched
            matched |= hmac.compare_digest(offered, digest)
        if scheme.lower() == "bearer" and given.strip() and matched:
            return None
        return error_response(401, "unauthorized", "Send a valid API key as Authorization: Bearer <key>.",
                              {"WWW-Authenticate": 'Bearer realm="webapp"'})

    app.before_request(check)
