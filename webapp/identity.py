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

from typing import Callable

from flask import has_request_context, request

from webapp.auth import current_key_id


def _last_entry(value: str) -> str:
    """X-Forwarded-For lists every hop; the last entry is the one the trusted proxy itself added."""
    return value.rsplit(",", 1)[-1].strip()


def client_identity(keys_on: bool, address_header: str | None) -> Callable[[], str | None]:
    """A function naming the client of the current request, for per-client admission."""

    def client() -> str | None:
        if not has_request_context():
            return None
        if keys_on:
            return current_key_id()
        address = request.remote_addr
        if address_header:
            forwarded = request.headers.get(address_header, "")
            address = _last_entry(forwarded) or address
        return f"addr_{address}" if address else None

    return client
