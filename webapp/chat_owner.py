"""Whose an AI SDK chat is: the API key's, or with keys off the browser's that started it.

The SDK picks chat ids on the client, and its resume (``GET
/api/ui/chat/<id>/stream``) names nothing but the id. With keys on a chat
belongs to the key (its hash). With keys off it used to belong to nobody:
a stranger who knew or guessed an id was replayed another client's
answer, prompt echo included, and a stranger's POST to that id became the
chat's stream. Now the first POST from a browser without one gets a random
browser id in a cookie (HttpOnly, SameSite=Lax, Secure over https, only
for the chat's paths), and the chat is named by it (``chat:<owner>:<id>``),
its streams owned by it. A request without the cookie, or with another,
owns nothing of it: its resume gets ``204``, and its POST starts its own
chat under its own owner. Browsers send the cookie by themselves; other
clients with keys off must keep it, as a browser does, to resume.

SameSite keeps the cookie off other sites' requests, so a front-end on
another site (``WEBAPP_CORS_ORIGINS``) cannot resume with keys off: use keys.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from flask import Response, request

from webapp.auth import current_key_id

COOKIE = "uncut_browser"
COOKIE_PATH = "/api/ui/chat"
_VALUE = re.compile(r"[A-Za-z0-9_-]{32}")


@dataclass(frozen=True)
class ChatOwner:
    """The owner to name the chat by (None: nobody's, so nothing to resume) and a browser id to hand out."""

    id: str | None
    new_cookie: str | None = None

    def remember(self, response: Response) -> Response:
        """Give the browser its id, when this request minted one."""
        if self.new_cookie is not None:
            response.set_cookie(COOKIE, self.new_cookie, path=COOKIE_PATH, httponly=True, samesite="Lax", secure=request.is_secure)
        return response


def _browser_owner(value: str) -> str:
    """The owner named after a browser id: its hash, so the id itself is never stored or logged."""
    return "browser_" + hashlib.sha256(value.encode()).hexdigest()[:32]


def chat_owner(*, mint: bool) -> ChatOwner:
    """This request's chat owner; ``mint`` (a POST) gives a browser without an id a new one."""
    key = current_key_id()
    if key is not None:
        return ChatOwner(key)
    value = request.cookies.get(COOKIE, "")
    if _VALUE.fullmatch(value):
        return ChatOwner(_browser_owner(value))
    if not mint:
        return ChatOwner(None)
    value = secrets.token_urlsafe(24)  # 32 characters, 192 random bits
    return ChatOwner(_browser_owner(value), value)
