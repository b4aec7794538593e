"""Reading what a request asks for, shared by the blueprints: its JSON, its chat messages, where it resumes.

Each raises an ``ApiError`` that says what is wrong, so a view reads its
whole request before anything streams.
"""

from __future__ import annotations

import re
from typing import Any

from flask import request
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from webapp.api import service
from webapp.chat_request import ChatLimits, InvalidChatRequest, parse_chat_body
from webapp.errors import ApiError
from webapp.jsonbody import InvalidJSON, load_json

_MESSAGE_CLASSES = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
STREAM_ID = re.compile(r"s_[0-9a-f]{16}")
_EVENT_ID = re.compile(r"(s_[0-9a-f]{16}):(\d{1,9})")


def json_body() -> Any:
    """The request's JSON, or a 415/400 ApiError that says what is wrong with it."""
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "Send the body as JSON with Content-Type: application/json.")
    try:
        return load_json(request.get_data(cache=True))
    except InvalidJSON as exc:
        raise ApiError(400, "invalid_json", str(exc)) from None


def chat_messages(body: Any) -> list[BaseMessage]:
    """A chat body (``{"message"}`` or ``{"messages"}``) as LangChain messages, within the service's limits."""
    settings = service().settings
    limits = ChatLimits(max_messages=settings.max_messages, max_message_chars=settings.max_message_chars)
    try:
        pairs = parse_chat_body(body, limits)
    except InvalidChatRequest as exc:
        raise ApiError(400, "invalid_request", str(exc)) from None
    return [_MESSAGE_CLASSES[role](content=content) for role, content in pairs]


def last_event_id() -> tuple[str, int] | None:
    """The (stream id, sequence number) the client resumes from, if it names one.

    ``Last-Event-ID`` is the header a browser's EventSource sends when it
    reconnects; ``?last_event_id=`` is for clients that cannot set headers.
    """
    raw = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    if not raw:
        return None
    match = _EVENT_ID.fullmatch(raw.strip())
    if match is None:
        raise ApiError(400, "invalid_request", "Last-Event-ID must be <stream_id>:<seq>, as sent in an event's id field.")
    return match.group(1), int(match.group(2))


def heartbeat_events() -> bool:
    """``?heartbeat_events=1``: heartbeats as ``event: heartbeat`` (a browser's EventSource cannot see comments)."""
    return request.args.get("heartbeat_events", "").lower() in ("1", "true", "yes")
