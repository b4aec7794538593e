"""Validation of the chat request body, with no Flask.

Accepts ``{"message": "..."}`` or ``{"messages": [{"role", "content"}, ...]}``
and returns plain ``(role, content)`` pairs, or raises ``InvalidChatRequest``
with a message that names the offending field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ROLES = ("system", "user", "assistant")


class InvalidChatRequest(ValueError):
    """The body is well-formed JSON but not a chat request we accept."""


@dataclass(frozen=True)
class ChatLimits:
    max_messages: int
    max_message_chars: int


def message_content(value: Any, where: str, limits: ChatLimits) -> str:
    """One message's text, within the limits."""
    if not isinstance(value, str):
        raise InvalidChatRequest(f"{where} must be a string")
    if not value.strip():
        raise InvalidChatRequest(f"{where} must not be empty")
    if len(value) > limits.max_message_chars:
        raise InvalidChatRequest(f"{where} is longer than {limits.max_message_chars} characters")
    return value


def parse_chat_body(body: Any, limits: ChatLimits) -> list[tuple[str, str]]:
    """The conversation as (role, content) pairs, ending with a user message."""
    if not isinstance(body, dict):
        raise InvalidChatRequest("the body must be a JSON object")
    has_message, has_messages = "message" in body, "messages" in body
    if has_message == has_messages:
        raise InvalidChatRequest('give exactly one of "message" (a string) or "messages" (a list)')
    if has_message:
        return [("user", message_content(body["message"], '"message"', limits))]

    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise InvalidChatRequest('"messages" must be a non-empty list')
    if len(messages) > limits.max_messages:
        raise InvalidChatRequest(f'"messages" has more than {limits.max_messages} items')
    pairs = []
    for index, item in enumerate(messages):
        where = f'"messages[{index}]"'
        if not isinstance(item, dict):
            raise InvalidChatRequest(f"{where} must be an object with role and content")
        role = item.get("role")
        if role not in ROLES:
            raise InvalidChatRequest(f"{where}.role must be one of {', '.join(ROLES)}")
        pairs.append((role, message_content(item.get("content"), f"{where}.content", limits)))
    if pairs[-1][0] != "user":
        raise InvalidChatRequest('the last of "messages" must have role "user"')
    return pairs
