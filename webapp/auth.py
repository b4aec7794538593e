"""Optional API keys: ``Authorization: Bearer <key>`` on every route but ``/healthz`` and the page.

Keys are compared in constant time (SHA-256 digests of equal length,
``hmac.compare_digest``, every key checked) and never logged. The key a
request used is known afterwards only by its hash (``current_key_id``):
streams belong to it, and admission counts per it.
"""

from __future__ import annotations

import hashlib
import hmac

from flask import Flask, g, request
from flask.typing import ResponseReturnValue

from webapp.errors import error_response

# The page holds no data (it asks for the key and sends it with its own requests), and health checks have no key.
OPEN_ENDPOINTS = frozenset({"health.healthz", "playground.index"})


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


def current_key_id() -> str | None:
    """The hash of the API key this request authenticated with; None when keys are off."""
    return g.get("api_key_id")


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
            g.api_key_id = "key_" + offered.hex()[:32]
            return None
        return error_response(401, "unauthorized", "Send a valid API key as Authorization: Bearer <key>.",
                              {"WWW-Authenticate": 'Bearer realm="webapp"'})

    app.before_request(check)
