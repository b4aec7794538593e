"""Validation of ``POST /v1/responses`` bodies, with no Flask.

Accepts what common clients send: ``model``, ``input`` (a string, or items:
messages with string or text-part content, ``function_call`` and
``function_call_output`` items, and ``reasoning`` items, which carry
nothing for the model), ``instructions``, flat function ``tools``,
``tool_choice``, ``parallel_tool_calls``, ``max_output_tokens``,
``temperature``, ``top_p``, ``stream``, ``metadata``, ``user``,
``reasoning``, ``text`` (plain text format only) and ``store: false``.

The service keeps no responses, so ``store: true`` and
``previous_response_id`` are refused; so is every other field, by name,
rather than silently ignored. The items become chat-completions messages
and go through the same checks as ``/v1/chat/completions`` (every call
answered, every answer to a known call).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import BaseMessage, SystemMessage

from webapp.chat_request import ChatLimits
from webapp.openai_request import convert_messages, model_param, sampling_params, whole_param
from webapp.openai_tools import InvalidCompletionRequest, parse_tool_choice, parse_tools

ACCEPTED = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "max_output_tokens",
        "temperature",
        "top_p",
        "stream",
        "metadata",
        "user",
        "reasoning",
        "text",
        "store",
    }
)
MAX_METADATA_KEYS = 16
MAX_REASONING_CHARS = 32  # reasoning.effort and .summary are echoed: "low", "detailed"...
_CHAT_MESSAGE = re.compile(r"messages\[(\d+)\](?:\.tool_calls\[(\d+)\]\.(?:function\.)?(\w+))?")
_CALL_FIELDS = {"id": "call_id"}  # a chat call's field -> the function_call item's


@dataclass(frozen=True)
class ResponsesRequest:
    model: str
    messages: list[BaseMessage]
    stream: bool = False
    params: dict[str, Any] = field(default_factory=dict)  # for the model: temperature, top_p, max_tokens
    tools: list[dict[str, Any]] = field(default_factory=list)  # chat-completions format, for bind_tools
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    echo: dict[str, Any] = field(default_factory=dict)  # what the Response object repeats


def _fail(message: str, param: str | None) -> InvalidCompletionRequest:
    return InvalidCompletionRequest(message, param)


def _text_parts(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise _fail(f"{where} must be a string or a list of text parts", where)
    texts = []
    for index, part in enumerate(value):
        if not isinstance(part, dict) or part.get("type") not in ("input_text", "output_text") or not isinstance(part.get("text"), str):
            raise _fail(
                f'{where}[{index}] must be a text part {{"type": "input_text", "text": ...}}; images and files are not supported',
                f"{where}[{index}]",
            )
        texts.append(part["text"])
    return "".join(texts)


def _items_as_chat(value: Any) -> tuple[list[dict[str, Any]], list[int], dict[tuple[int, int], int]]:
    """``input`` as chat-completions messages, the input item each came from, and each call's item.

    Function calls join the assistant turn before them (its text and its
    other calls), as chat completions has them.
    """
    if isinstance(value, str):
        if not value.strip():
            raise _fail("input must not be empty", "input")
        return [{"role": "user", "content": value}], [0], {}
    if not isinstance(value, list) or not value:
        raise _fail("input must be a string or a non-empty list of items", "input")
    chat: list[dict[str, Any]] = []
    origin: list[int] = []
    calls: dict[tuple[int, int], int] = {}  # (chat message, its call) -> the function_call item
    for index, item in enumerate(value):
        where = f"input[{index}]"
        if not isinstance(item, dict):
            raise _fail(f"{where} must be an object", where)
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise _fail(f"{where}.role must be one of user, assistant, system, developer", f"{where}.role")
            chat.append({"role": role, "content": _text_parts(item.get("content"), f"{where}.content")})
            origin.append(index)
        elif kind == "function_call":
            call = {
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments")},
            }
            previous = chat[-1] if chat else None
            if previous is not None and previous["role"] == "assistant":  # the same turn: its text, its other calls
                previous.setdefault("tool_calls", []).append(call)
            else:
                chat.append({"role": "assistant", "content": "", "tool_calls": [call]})
                origin.append(index)
            calls[(len(chat) - 1, len(chat[-1]["tool_calls"]) - 1)] = index
            continue
        elif kind == "function_call_output":
            output = item.get("output")
            chat.append(
                {
                    "role": "tool",
                    "tool_call_id": item.get("call_id"),
                    "content": output if isinstance(output, str) else _text_parts(output, f"{where}.output"),
                }
            )
            origin.append(index)
        elif kind == "reasoning":
            continue  # a previous turn's reasoning: nothing the model needs again
        else:
            raise _fail(
                f"{where}.type {kind!r} is not supported (message, function_call, function_call_output, reasoning)", f"{where}.type"
            )
    return chat, origin, calls


def _flat_tools(value: Any) -> list[dict[str, Any]]:
    """Responses tools are flat (``{"type": "function", "name", ...}``): nested, they pass the chat checks."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail("tools must be a list of function tools", "tools")
    nested = []
    for index, tool in enumerate(value):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise _fail(f"tools[{index}].type must be function ({kind!r}: this server runs no hosted tools)", f"tools[{index}].type")
        nested.append({"type": "function", "function": {k: v for k, v in tool.items() if k != "type"}})
    try:
        return parse_tools(nested)
    except InvalidCompletionRequest as exc:
        param = (exc.param or "tools").replace(".function.", ".")
        raise _fail(
            str(exc).replace(".function.", ".").replace('{"type": "function", "function": {...}}', '{"type": "function", "name": ...}'),
            param,
        ) from None


def _tool_choice(value: Any, tools: list[dict[str, Any]]) -> str | dict[str, Any] | None:
    if isinstance(value, dict) and value.get("type") == "function" and "function" not in value:
        value = {"type": "function", "function": {"name": value.get("name")}}
    try:
        return parse_tool_choice(value, tools)
    except InvalidCompletionRequest as exc:
        raise _fail(
            str(exc).replace('{"type": "function", "function": {"name": ...}}', '{"type": "function", "name": ...}'), "tool_choice"
        ) from None


def _echoed(body: dict[str, Any]) -> dict[str, Any]:
    """The optional fields a Response repeats, checked."""
    metadata = body.get("metadata")
    if metadata is not None and (
        not isinstance(metadata, dict)
        or len(metadata) > MAX_METADATA_KEYS
        or not all(isinstance(k, str) and len(k) <= 64 and isinstance(v, str) and len(v) <= 512 for k, v in metadata.items())
    ):
        raise _fail(f"metadata must be up to {MAX_METADATA_KEYS} string keys (64 characters) with string values (512)", "metadata")
    user = body.get("user")
    if user is not None and (not isinstance(user, str) or len(user) > 256):
        raise _fail("user must be a string of up to 256 characters", "user")
    reasoning = body.get("reasoning")
    if reasoning is not None and (
        not isinstance(reasoning, dict)
        or not all(
            reasoning.get(key) is None or (isinstance(reasoning.get(key), str) and len(reasoning[key]) <= MAX_REASONING_CHARS)
            for key in ("effort", "summary")
        )
    ):
        raise _fail(
            f'reasoning must be an object such as {{"effort": "low"}} (strings of up to {MAX_REASONING_CHARS} characters)', "reasoning"
        )
    text = body.get("text")
    text_format = text.get("format") if isinstance(text, dict) else None
    if text is not None and (
        not isinstance(text, dict)
        or (text_format is not None and (not isinstance(text_format, dict) or text_format.get("type", "text") != "text"))
    ):
        raise _fail('text.format must be {"type": "text"}: this server does not constrain output to a schema', "text.format")
    echo: dict[str, Any] = {"metadata": metadata or {}, "user": user}
    if reasoning is not None:
        echo["reasoning"] = {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")}
    return echo


def parse_responses_request(body: Any, limits: ChatLimits, max_tokens: int) -> ResponsesRequest:
    _check_parameters(body)
    model = model_param(body)
    instructions = body.get("instructions")
    if instructions is not None and (not isinstance(instructions, str) or len(instructions) > limits.max_message_chars):
        raise _fail(f"instructions must be a string of up to {limits.max_message_chars} characters", "instructions")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _fail("stream must be true or false", "stream")
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise _fail("parallel_tool_calls must be true or false", "parallel_tool_calls")
    tools = _flat_tools(body.get("tools"))
    tool_choice = _tool_choice(body.get("tool_choice"), tools)

    messages = _input_messages(body.get("input"), limits)
    if instructions:
        messages = [SystemMessage(instructions), *messages]

    params: dict[str, Any] = sampling_params(body)
    limit = whole_param(body, "max_output_tokens", 1, max_tokens)
    if limit is not None:
        params["max_tokens"] = limit
    echo = {
        "model": model,
        "instructions": instructions,
        "max_output_tokens": limit,
        "tools": [{"type": "function", **tool["function"]} for tool in tools],
        "tool_choice": _echo_choice(tool_choice),
        "parallel_tool_calls": True if parallel is None else parallel,
        "temperature": params.get("temperature"),
        "top_p": params.get("top_p"),
        **_echoed(body),
    }
    return ResponsesRequest(model, messages, stream, params, tools, tool_choice, parallel, echo)


def _check_parameters(body: Any) -> None:
    """A JSON object of parameters this server serves: none it would ignore, none that need a stored response."""
    if not isinstance(body, dict):
        raise _fail("the body must be a JSON object", None)
    for name in body:
        if name not in ACCEPTED and name != "previous_response_id":
            raise InvalidCompletionRequest(f"Unsupported parameter: {name!r}.", name, code="unsupported_parameter")
    if body.get("previous_response_id") is not None:
        raise InvalidCompletionRequest(
            "previous_response_id is not supported: this server keeps no responses. Send the whole conversation in input.",
            "previous_response_id",
            code="unsupported_parameter",
        )
    if body.get("store") not in (None, False):
        raise InvalidCompletionRequest(
            "store must be false: this server keeps no responses.",
            "store",
            code="unsupported_parameter",
        )


def _input_messages(items: Any, limits: ChatLimits) -> list[Any]:
    """``input`` as checked chat messages; an error names the client's input item, not the chat message made of it."""
    chat, origin, call_items = _items_as_chat(items)
    if len(chat) > limits.max_messages:
        raise _fail(f"input has more than {limits.max_messages} messages", "input")
    try:
        return convert_messages(chat, limits)
    except InvalidCompletionRequest as exc:

        def item(match: re.Match[str]) -> str:
            message, call, field = match.group(1), match.group(2), match.group(3)
            if call is not None and (int(message), int(call)) in call_items:  # a function_call item's own field
                return f"input[{call_items[(int(message), int(call))]}].{_CALL_FIELDS.get(field, field)}"
            return f"input[{origin[int(message)]}]"

        raise _fail(_CHAT_MESSAGE.sub(item, str(exc)), _CHAT_MESSAGE.sub(item, exc.param or "input")) from None


def _echo_choice(choice: str | dict[str, Any] | None) -> Any:
    if isinstance(choice, dict):
        return {"type": "function", "name": choice["function"]["name"]}
    return choice or "auto"
