"""Who is asking: the owner of the streams a request starts, and whose share of admission it takes.

With API keys on, both are the hash of the request's key: a key's streams
are its own, and each key gets its share. With keys off there is no owner
(anyone who knows a stream id may follow it; ids are unguessable; AI SDK
chats, whose ids clients choose, are their browser's: webapp.chat_owner),
and the share is per client address: the peer's, or behind a trusted proxy the one
its configured header carries. A header is only trusted when configured:
clients can send any header they like.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from flask import has_request_context, request

from webapp.auth import ApiKeys, current_key_id, presented_key


def _last_entry(value: str) -> str:
    """X-Forwarded-For lists every hop; the last entry is the one the trusted proxy itself added."""
    return value.rsplit(",", 1)[-1].strip()


def _environ_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


def address_of(environ: Mapping[str, Any], address_header: str | None) -> str | None:
    """``addr_<address>``: the peer's, or the one a trusted proxy's configured header carries."""
    address = environ.get("REMOTE_ADDR")
    if address_header:
        address = _last_entry(str(environ.get(_environ_key(address_header), ""))) or address
    return f"addr_{address}" if address else None


def client_identity(keys_on: bool, address_header: str | None) -> Callable[[], str | None]:
    """A function naming the client of the current request, for per-client admission."""

    def client() -> str | None:
        if not has_request_context():
            return None
        if keys_on:
            return current_key_id()
        return address_of(request.environ, address_header)

    return client


def gate_identity(keys: ApiKeys, address_header: str | None) -> Callable[[Mapping[str, Any]], str | None]:
    """The same name from the WSGI environ alone, for the admission gate (before Flask has a request)."""

    def client(environ: Mapping[str, Any]) -> str | None:
        if keys:
            return keys.key_id(presented_key(str(environ.get("HTTP_AUTHORIZATION", "")), str(environ.get("HTTP_X_API_KEY", ""))))
        return address_of(environ, address_header)

    return client
