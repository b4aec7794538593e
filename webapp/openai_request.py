"""Validation of ``POST /v1/chat/completions`` bodies, with no Flask.

Accepts the fields common clients send (``model``, ``messages`` with string
or text-part content, ``temperature``, ``top_p``, ``max_tokens`` /
``max_completion_tokens``, ``stop``, ``stream``, ``stream_options``, ``n=1``)
and ignores the rest, as OpenAI-compatible servers do. Anything malformed
raises ``InvalidCompletionRequest`` naming the parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from webapp.chat_request import ChatLimits

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


class InvalidCompletionRequest(ValueError):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class CompletionRequest:
    model: str
    messages: list[tuple[str, str]]
    stream: bool = False
    include_usage: bool = False
    params: dict[str, Any] = field(default_factory=dict)  # temperature, top_p, max_tokens, stop: for the model


def _number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise InvalidCompletionRequest(f"{name} must be a number from {low:g} to {high:g}", name)
    return float(value)


def _whole(body: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidCompletionRequest(f"{name} must be a whole number from {low} to {high}", name)
    return value


def _content(value: Any, where: str, limits: ChatLimits) -> str:
    if isinstance(value, list):
        parts = []
        for index, part in enumerate(value):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise InvalidCompletionRequest(f"{where}[{index}] must be a text part {{\"type\": \"text\", \"text\": ...}}", where)
            parts.append(part["text"])
        value = "".join(parts)
    if not isinstance(value, str):
        raise InvalidCompletionRequest(f"{where} must be a string or a list of text parts", where)
    if not value.strip():
        raise InvalidCompletionRequest(f"{where} must not be empty", where)
    if len(value) > limits.max_message_chars:
        raise InvalidCompletionRequest(f"{where} is longer than {limits.max_message_chars} characters", where)
    return value


def _stop(value: Any) -> list[str] | None:
    if value is None:
        return None
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not 1 <= len(stops) <= 4 or not all(isinstance(s, str) and s for s in stops):
        raise InvalidCompletionRequest("stop must be a non-empty string or a list of 1 to 4 of them", "stop")
    return stops


def parse_completion_request(body: Any, limits: ChatLimits, max_tokens: int) -> CompletionRequest:
    if not isinstance(body, dict):
        raise InvalidCompletionRequest("the body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidCompletionRequest("model must be a non-empty string", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidCompletionRequest("messages must be a non-empty list", "messages")
    if len(messages) > limits.max_messages:
        raise InvalidCompletionRequest(f"messages has more than {limits.max_messages} items", "messages")
    pairs = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise InvalidCompletionRequest(f"{where} must be an object", where)
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise InvalidCompletionRequest(f"{where}.role must be one of {', '.join(ROLES)} (tools are not supported)", f"{where}.role")
        pairs.append((ROLES[role], _content(message.get("content"), f"{where}.content", limits)))

    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidCompletionRequest("stream must be true or false", "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict) or not isinstance(options.get("include_usage", False), bool):
        raise InvalidCompletionRequest("stream_options must be an object with a boolean include_usage", "stream_options")
    if body.get("n", 1) != 1 or isinstance(body.get("n"), bool):
        raise InvalidCompletionRequest("only n=1 is supported", "n")

    params: dict[str, Any] = {}
    for name, low, high in (("temperature", 0, 2), ("top_p", 0, 1)):
        value = _number(body, name, low, high)
        if value is not None:
            params[name] = value
    limit = _whole(body, "max_completion_tokens", 1, max_tokens)
    limit = limit if limit is not None else _whole(body, "max_tokens", 1, max_tokens)
    if limit is not None:
        params["max_tokens"] = limit
    stop = _stop(body.get("stop"))
    if stop:
        params["stop"] = stop
    return CompletionRequest(model.strip(), pairs, stream, bool(options.get("include_usage")), params)
