"""Threads of the demo agent: a conversation kept by the server, that stops for approval and continues later.

- ``POST /api/threads``: ``201 {"thread_id"}``;
- ``GET /api/threads/<id>``: ``{"thread_id", "status", "messages", "interrupts"}``,
  status ``idle``, ``busy`` (a run holds it) or ``interrupted`` (an approval waits);
- ``POST /api/threads/<id>/events``: ``{"message"}`` (a new turn; add
  ``"reject_pending": true`` to pass over a pending approval) or
  ``{"resume"}`` (the answer to the pending interrupt: the middleware's
  ``{"decisions": [...]}``, or ``{"<interrupt id>": ...}``); the run streams
  as SSE like every stream (``GET`` with ``Last-Event-ID`` resumes it);
- ``DELETE /api/threads/<id>``: ``204``.

A thread is its key's: any other key gets the same ``404`` as an unknown id,
on every worker (the index is in the thread store). With keys off the
thread id, 128 random bits handed out by the server, is what names it. One
run per thread at a time (``409 thread_busy``), across workers when the
stream store is shared (the lease lives in its Redis).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from uncut.flask import current_streams, resume_response, thread_response
from uncut.threads import NOTHING, pending_interrupts, thread_config
from webapp.api import service
from webapp.api.reading import heartbeat_events, json_body, last_event_id
from webapp.auth import current_key_id
from webapp.chat_request import ChatLimits, InvalidChatRequest, message_content
from webapp.errors import ApiError

bp = Blueprint("threads", __name__, url_prefix="/api/threads")

KEYS_OFF_OWNER = "public"  # with keys off every thread is everyone's: its id is the secret
TURN_FIELDS = frozenset({"message", "resume", "reject_pending"})


def _owner() -> str:
    return current_key_id() or KEYS_OFF_OWNER


def _owned(thread_id: str) -> str:
    """``thread_id`` if the caller's key owns it, else the same 404 as for an id that never existed."""
    if len(thread_id) > 64 or not service().threads.index.owns(_owner(), thread_id):
        raise ApiError(404, "thread_not_found", f"No thread {thread_id[:64]} here for this key (or it expired).")
    return thread_id


@bp.post("")
def create_thread() -> ResponseReturnValue:
    return {"thread_id": service().threads.index.create(_owner())}, 201


@bp.get("/<thread_id>")
def show_thread(thread_id: str) -> ResponseReturnValue:
    _owned(thread_id)
    agent = service().threads.agent
    config = thread_config(thread_id)
    state = agent.get_state(config)
    pending = pending_interrupts(agent, config)
    busy = current_streams().leases.holder(thread_id) is not None
    status = "busy" if busy else "interrupted" if pending else "idle"
    messages = (state.values or {}).get("messages") or []
    return {"thread_id": thread_id, "status": status, "messages": [_shown(m) for m in messages], "interrupts": [p.shown() for p in pending]}


@bp.delete("/<thread_id>")
def delete_thread(thread_id: str) -> ResponseReturnValue:
    _owned(thread_id)
    if current_streams().leases.holder(thread_id) is not None:
        raise ApiError(409, "thread_busy", f"thread {thread_id} has a run in progress; delete it when the run ends")
    service().threads.index.delete(thread_id)
    return Response(status=204)


@bp.route("/<thread_id>/events", methods=["GET", "POST"])
def thread_events(thread_id: str) -> ResponseReturnValue:
    _owned(thread_id)
    if request.method == "GET":
        resume = last_event_id()
        if resume is None:
            raise ApiError(400, "invalid_request", "GET resumes a stream: send Last-Event-ID. Start a run with POST.")
        return resume_response(resume[0], after=resume[1], heartbeat_events=heartbeat_events())
    message, resume_value, reject_pending = _turn(json_body())
    settings = service().settings
    service().threads.index.touch(thread_id)
    return thread_response(
        service().threads.agent,
        thread_id,
        input={"messages": [HumanMessage(content=message)]} if message is not None else NOTHING,
        resume=resume_value,
        reject_pending=reject_pending,
        lease_seconds=settings.thread_lease_seconds,
        heartbeat_events=heartbeat_events(),
        metadata={"agent": "demo", "thread_id": thread_id},
    )


def _turn(body: Any) -> tuple[str | None, Any, bool]:
    """(message, resume, reject_pending) from the body: exactly one of the first two, checked before anything runs."""
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "the body must be a JSON object")
    unknown = sorted(set(body) - TURN_FIELDS)
    if unknown:
        raise ApiError(400, "invalid_request", f"unknown field(s): {', '.join(unknown)[:200]} (allowed: message, resume, reject_pending)")
    if ("message" in body) == ("resume" in body):
        raise ApiError(
            400, "invalid_request", 'give exactly one of "message" (a new turn) or "resume" (the answer to the pending interrupt)'
        )
    reject_pending = body.get("reject_pending", False)
    if not isinstance(reject_pending, bool):
        raise ApiError(400, "invalid_request", '"reject_pending" must be true or false')
    if "resume" in body:
        return None, body["resume"], reject_pending
    try:
        limits = ChatLimits(max_messages=1, max_message_chars=service().settings.max_message_chars)
        return message_content(body["message"], '"message"', limits), NOTHING, reject_pending
    except InvalidChatRequest as exc:
        raise ApiError(400, "invalid_request", str(exc)) from None


def _shown(message: BaseMessage) -> dict[str, Any]:
    """A checkpointed message as JSON: role, text, and the tool calls or the call it answers."""
    roles = {HumanMessage: "user", AIMessage: "assistant", SystemMessage: "system", ToolMessage: "tool"}
    role = next((name for cls, name in roles.items() if isinstance(message, cls)), message.type)
    shown: dict[str, Any] = {"role": role, "content": message.text if hasattr(message, "text") else str(message.content)}
    if isinstance(message, AIMessage) and message.tool_calls:
        shown["tool_calls"] = [{"id": c.get("id"), "name": c["name"], "args": c["args"]} for c in message.tool_calls]
    if isinstance(message, ToolMessage):
        shown.update(tool_call_id=message.tool_call_id, name=message.name, status=message.status)
    return shown
