"""The Vercel AI SDK's chat endpoint: ``POST /api/ui/chat`` and its resume, ``GET /api/ui/chat/<chat id>/stream``.

``useChat`` (``DefaultChatTransport({api: "/api/ui/chat"})``) posts its
UI messages; the configured model answers, as a UI message stream. With
``?agent=1`` the demo agent answers, on a thread the chat keeps
(uncut.ui_threads): ``send_email`` waits for the user's approval
(``tool-approval-request``; the SDK's ``addToolApprovalResponse`` and the
next request resume it, once), and the chat's thread lives in the thread
store, on any worker, for ``WEBAPP_THREAD_TTL_SECONDS``. The SDK's ``resume`` asks for the
chat's latest stream with a GET: it is replayed from its start and then
followed live (across workers with a shared store), or 204 when there is
none. A chat is its owner's (``webapp.chat_owner``): the key's, or with
keys off the browser's that started it; anyone else's resume gets 204.
"""

from __future__ import annotations

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue

from uncut.flask import resume_ui_message_response, ui_message_response, ui_thread_response
from uncut.ui_request import InvalidUIRequest, UIChatRequest, chat_thread_id, parse_ui_chat, valid_chat_id
from webapp.api import service
from webapp.api.reading import json_body
from webapp.api.threads import KEYS_OFF_OWNER
from webapp.auth import current_key_id
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
    owner = chat_owner(mint=True)
    if use_agent:
        return owner.remember(_agent_turn(req, owner.id))
    return owner.remember(ui_message_response(service().chat_model, req.messages, chat_id=req.chat_id, owner=owner.id))


def _agent_turn(req: UIChatRequest, owner: str | None) -> Response:
    """The demo agent on the chat's thread: made on first use, inside the key's share of threads.

    The thread is named by the chat's owner (the key, or with keys off the
    browser), so no one reaches another's; the share is the key's, or with
    keys off everyone's together, as for /api/threads: a client that drops
    its cookie gets a new browser id, never a new share.
    """
    threads, settings = service().threads, service().settings
    thread_id = chat_thread_id(owner, req.chat_id)
    threads.index.claim(current_key_id() or KEYS_OFF_OWNER, thread_id)
    return ui_thread_response(
        threads.agent,
        req,
        thread_id=thread_id,
        owner=owner,
        lease_seconds=settings.thread_lease_seconds,
        metadata={"agent": "demo"},
    )


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
