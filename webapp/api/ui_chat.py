"""The Vercel AI SDK's chat endpoint: ``POST /api/ui/chat`` and its resume, ``GET /api/ui/chat/<chat id>/stream``.

``useChat`` (``DefaultChatTransport({api: "/api/ui/chat"})``) posts its
UI messages; the configured model answers, or the demo agent with
``?agent=1``, as a UI message stream. The SDK's ``resume`` asks for the
chat's latest stream with a GET: it is replayed from its start and then
followed live (across workers with a shared store), or 204 when there is
none. A chat is its owner's (``webapp.chat_owner``): the key's, or with
keys off the browser's that started it; anyone else's resume gets 204.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue

from uncut.flask import resume_ui_message_response, ui_message_response
from uncut.ui_request import InvalidUIRequest, parse_ui_chat, valid_chat_id
from webapp.api import service
from webapp.api.reading import json_body
from webapp.chat_owner import chat_owner
from webapp.errors import ApiError

bp = Blueprint("ui_chat", __name__, url_prefix="/api/ui/chat")


def _invalid(exc: InvalidUIRequest) -> ApiError:
    return ApiError(400, "invalid_request", str(exc))


@bp.post("")
def chat() -> ResponseReturnValue:
    settings = service().settings
    use_agent = request.args.get("agent", "").lower() in ("1", "true", "yes")
    try:
        req = parse_ui_chat(json_body(), max_messages=settings.max_messages, max_message_chars=settings.max_message_chars)
    except InvalidUIRequest as exc:
        raise _invalid(exc) from None
    runnable: Any = service().agent if use_agent else service().chat_model
    input: Any = {"messages": req.messages} if use_agent else req.messages
    metadata = {"agent": "demo"} if use_agent else None
    owner = chat_owner(mint=True)
    return owner.remember(ui_message_response(runnable, input, chat_id=req.chat_id, metadata=metadata, owner=owner.id))


@bp.get("/<chat_id>/stream")
def resume(chat_id: str) -> ResponseReturnValue:
    try:
        valid_chat_id(chat_id, "chat id")
    except InvalidUIRequest as exc:
        raise _invalid(exc) from None
    owner = chat_owner(mint=False)
    if owner.id is None:  # keys off and no browser id: no chat here is this client's
        return Response(status=204)
    return resume_ui_message_response(chat_id, owner=owner.id)
