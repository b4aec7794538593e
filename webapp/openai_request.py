"""Validation of ``POST /v1/chat/completions`` bodies, with no Flask.

Accepts the fields common clients send (``model``, ``messages`` with string
or text-part content, ``temperature``, ``top_p``, ``max_tokens`` /
``max_completion_tokens``, ``stop``, ``stream``, ``stream_options``, ``n=1``,
and function calling: ``tools``, ``tool_choice``, ``parallel_tool_calls``,
assistant messages with ``tool_calls`` and ``tool`` messages answering them)
and ignores the rest, as OpenAI-compatible servers do. Anything malformed
raises ``InvalidCompletionRequest`` naming the parameter. The messages come
out as LangChain messages, ready for the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from webapp.chat_request import ChatLimits
from webapp.openai_tools import InvalidCompletionRequest, parse_tool_calls, parse_tool_choice, parse_tools

ROLES = ("system", "developer", "user", "assistant", "tool")
# ``model`` is echoed in every chunk of a stream: a long one multiplies the bytes sent by the tokens.
MAX_MODEL_CHARS = 256

__all__ = [
    "CompletionRequest",
    "InvalidCompletionRequest",
    "MAX_MODEL_CHARS",
    "convert_messages",
    "model_param",
    "parse_completion_request",
    "sampling_params",
    "whole_param",
]


@dataclass(frozen=True)
class CompletionRequest:
    model: str
    messages: list[BaseMessage]
    stream: bool = False
    include_usage: bool = False
    params: dict[str, Any] = field(default_factory=dict)  # temperature, top_p, max_tokens, stop: for the model
    tools: list[dict[str, Any]] = field(default_factory=list)  # OpenAI's format, for bind_tools
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None


def _number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise InvalidCompletionRequest(f"{name} must be a number from {low:g} to {high:g}", name)
    return float(value)


def model_param(body: dict[str, Any]) -> str:
    """The request's ``model``, stripped: the name echoed back, so bounded."""
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidCompletionRequest("model must be a non-empty string", "model")
    if len(model) > MAX_MODEL_CHARS:
        raise InvalidCompletionRequest(f"model must be at most {MAX_MODEL_CHARS} characters", "model")
    return model.strip()


def sampling_params(body: dict[str, Any]) -> dict[str, float]:
    """``temperature`` and ``top_p`` where given, checked: both OpenAI APIs take them alike."""
    params = {}
    for name, low, high in (("temperature", 0, 2), ("top_p", 0, 1)):
        value = _number(body, name, low, high)
        if value is not None:
            params[name] = value
    return params


def whole_param(body: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidCompletionRequest(f"{name} must be a whole number from {low} to {high}", name)
    return value


def _content(value: Any, where: str, limits: ChatLimits, *, may_be_empty: bool = False) -> str:
    if isinstance(value, list):
        parts = []
        for index, part in enumerate(value):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise InvalidCompletionRequest(f'{where}[{index}] must be a text part {{"type": "text", "text": ...}}', where)
            parts.append(part["text"])
        value = "".join(parts)
    if not isinstance(value, str):
        raise InvalidCompletionRequest(f"{where} must be a string or a list of text parts", where)
    if not value.strip() and not may_be_empty:
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
    model = model_param(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidCompletionRequest("messages must be a non-empty list", "messages")
    if len(messages) > limits.max_messages:
        raise InvalidCompletionRequest(f"messages has more than {limits.max_messages} items", "messages")
    tools = parse_tools(body.get("tools"))
    tool_choice = parse_tool_choice(body.get("tool_choice"), tools)
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise InvalidCompletionRequest("parallel_tool_calls must be true or false", "parallel_tool_calls")
    converted = convert_messages(messages, limits)

    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidCompletionRequest("stream must be true or false", "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict) or not isinstance(options.get("include_usage", False), bool):
        raise InvalidCompletionRequest("stream_options must be an object with a boolean include_usage", "stream_options")
    if body.get("n", 1) != 1 or isinstance(body.get("n"), bool):
        raise InvalidCompletionRequest("only n=1 is supported", "n")

    params: dict[str, Any] = sampling_params(body)
    limit = whole_param(body, "max_completion_tokens", 1, max_tokens)
    limit = limit if limit is not None else whole_param(body, "max_tokens", 1, max_tokens)
    if limit is not None:
        params["max_tokens"] = limit
    stop = _stop(body.get("stop"))
    if stop:
        params["stop"] = stop
    return CompletionRequest(model, converted, stream, bool(options.get("include_usage")), params, tools, tool_choice, parallel)


def convert_messages(messages: list[Any], limits: ChatLimits) -> list[BaseMessage]:
    """The conversation as LangChain messages; every tool call answered, every answer to a known call."""
    converted: list[BaseMessage] = []
    waiting: dict[str, str] = {}  # tool_call_id -> tool name, for the calls not yet answered
    asked_at = -1  # the assistant message whose calls are waiting
    answered: set[str] = set()
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise InvalidCompletionRequest(f"{where} must be an object", where)
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise InvalidCompletionRequest(f"{where}.role must be one of {', '.join(ROLES)}", f"{where}.role")
        if waiting and role != "tool":
            raise InvalidCompletionRequest(
                f"messages[{asked_at}].tool_calls must each be answered by a tool message before {where}",
                f"messages[{asked_at}].tool_calls",
            )
        if role == "tool":
            converted.append(_tool_message(message, where, limits, waiting, answered))
        elif role == "assistant":
            calls = parse_tool_calls(message.get("tool_calls"), f"{where}.tool_calls")
            content = message.get("content")
            text = "" if calls and content in (None, "") else _content(content, f"{where}.content", limits)
            for position, call in enumerate(calls):
                if call["id"] in waiting or call["id"] in answered:
                    raise InvalidCompletionRequest(f"{where}.tool_calls[{position}].id is not unique", f"{where}.tool_calls[{position}].id")
                waiting[call["id"]] = call["name"]  # type: ignore[index]
            asked_at = index
            converted.append(AIMessage(content=text, tool_calls=calls))
        else:
            text = _content(message.get("content"), f"{where}.content", limits)
            converted.append(HumanMessage(text) if role == "user" else SystemMessage(text))
    if waiting:
        raise InvalidCompletionRequest(
            f"messages[{asked_at}].tool_calls must each be answered by a tool message", f"messages[{asked_at}].tool_calls"
        )
    return converted


def _tool_message(message: dict[str, Any], where: str, limits: ChatLimits, waiting: dict[str, str], answered: set[str]) -> ToolMessage:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidCompletionRequest(f"{where}.tool_call_id must be the id of a call the assistant made", f"{where}.tool_call_id")
    if call_id not in waiting:
        why = "was answered already" if call_id in answered else "names no call of the assistant message before it"
        raise InvalidCompletionRequest(f"{where}.tool_call_id {why}", f"{where}.tool_call_id")
    content = _content(message.get("content"), f"{where}.content", limits, may_be_empty=True)
    answered.add(call_id)
    return ToolMessage(content, tool_call_id=call_id, name=waiting.pop(call_id))
