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


def presented_key(authorization: str, x_api_key: str) -> str:
    """The ``Authorization`` value to check: the header itself, or ``x-api-key`` (what LangGraph's SDKs send) as a Bearer key."""
    if not authorization and x_api_key:
        return "Bearer " + x_api_key
    return authorization


def current_key_id() -> str | None:
    """The hash of the API key this request authenticated with; None when keys are off."""
    return g.get("api_key_id")


class ApiKeys:
    """The configured keys, by digest: ``key_id`` checks an ``Authorization`` header's value against them."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self._digests = [_digest(key) for key in keys]

    def __bool__(self) -> bool:
        return bool(self._digests)

    def key_id(self, authorization: str) -> str | None:
        """``key_<hash>`` of a valid ``Bearer`` key, else None; the time does not depend on which key matched."""
        scheme, _, given = authorization.partition(" ")
        offered = _digest(given.strip())
        matched = False
        for digest in self._digests:  # no early exit
            matched |= hmac.compare_digest(offered, digest)
        if scheme.lower() == "bearer" and given.strip() and matched:
            return "key_" + offered.hex()[:32]
        return None


def require_api_keys(app: Flask, keys: ApiKeys) -> None:
    """Install the check; with no keys configured, nothing is installed."""
    if not keys:
        return

    def check() -> ResponseReturnValue | None:
        if request.endpoint in OPEN_ENDPOINTS:
            return None
        key_id = keys.key_id(presented_key(request.headers.get("Authorization", ""), request.headers.get("x-api-key", "")))
        if key_id is not None:
            g.api_key_id = key_id
            return None
        return error_response(
            401,
            "unauthorized",
            "Send a valid API key as Authorization: Bearer <key> (or x-api-key: <key>).",
            {"WWW-Authenticate": 'Bearer realm="webapp"'},
        )

    app.before_request(check)
