"""Validation of the tool parts of an OpenAI chat request: ``tools``, ``tool_choice`` and calls.

The shapes are OpenAI's: a tool is ``{"type": "function", "function":
{"name", "description", "parameters", "strict"}}``; an assistant message's
call is ``{"id", "type": "function", "function": {"name", "arguments"}}``
with the arguments as JSON text. Anything else raises
``InvalidCompletionRequest`` naming the parameter, as OpenAI's 400s do.
No Flask.
"""

from __future__ import annotations

import re
from typing import Any

from langchain_core.messages import ToolCall

from webapp.json_schema import SchemaError, check_schema
from webapp.jsonbody import InvalidJSON, loads_strict


class InvalidCompletionRequest(ValueError):
    """A request OpenAI would refuse with a 400; ``param`` names the field, ``code`` is OpenAI's (or None)."""

    def __init__(self, message: str, param: str | None = None, *, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.code = code


TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_TOOLS = 128
MAX_CALL_ID_CHARS = 256
TOOL_CHOICES = ("none", "auto", "required")


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not TOOL_NAME.fullmatch(value):
        raise InvalidCompletionRequest(f"{where} must be 1 to 64 letters, digits, underscores or dashes", where)
    return value


def parse_tools(value: Any) -> list[dict[str, Any]]:
    """The request's function tools, checked, in OpenAI's format (what ``bind_tools`` takes)."""
    if value is None:
        return []
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_TOOLS:
        raise InvalidCompletionRequest(f"tools must be a list of 1 to {MAX_TOOLS} tools", "tools")
    tools, names = [], set()
    for index, tool in enumerate(value):
        where = f"tools[{index}]"
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(tool.get("function"), dict):
            raise InvalidCompletionRequest(f'{where} must be {{"type": "function", "function": {{...}}}}', where)
        function = tool["function"]
        name = _name(function.get("name"), f"{where}.function.name")
        if name in names:
            raise InvalidCompletionRequest(f"{where}.function.name {name!r} is used by another tool", f"{where}.function.name")
        names.add(name)
        checked: dict[str, Any] = {"name": name}
        if "description" in function and function["description"] is not None:
            if not isinstance(function["description"], str):
                raise InvalidCompletionRequest(f"{where}.function.description must be a string", f"{where}.function.description")
            checked["description"] = function["description"]
        parameters = function.get("parameters")
        if parameters is not None:
            if not isinstance(parameters, dict) or parameters.get("type", "object") != "object":
                raise InvalidCompletionRequest(
                    f"{where}.function.parameters must be a JSON schema of type object", f"{where}.function.parameters"
                )
            try:
                check_schema(parameters)
            except SchemaError as exc:
                inside = f" at {exc.where}" if exc.where else ""
                raise InvalidCompletionRequest(
                    f"{where}.function.parameters is not a valid JSON Schema{inside}: {exc}", f"{where}.function.parameters"
                ) from None
            checked["parameters"] = parameters
        if "strict" in function and function["strict"] is not None:
            if not isinstance(function["strict"], bool):
                raise InvalidCompletionRequest(f"{where}.function.strict must be true or false", f"{where}.function.strict")
            checked["strict"] = function["strict"]
        tools.append({"type": "function", "function": checked})
    return tools


def parse_tool_choice(value: Any, tools: list[dict[str, Any]]) -> str | dict[str, Any] | None:
    """``none``, ``auto``, ``required``, or one named tool of the request's."""
    if value is None:
        return None
    if not tools and value != "none":
        raise InvalidCompletionRequest("tool_choice needs tools", "tool_choice")
    if isinstance(value, str) and value in TOOL_CHOICES:
        return value
    names = {tool["function"]["name"] for tool in tools}
    if isinstance(value, dict) and value.get("type") == "function" and isinstance(value.get("function"), dict):
        name = value["function"].get("name")
        if not isinstance(name, str):
            raise InvalidCompletionRequest("tool_choice.function.name must be the name of one of the tools", "tool_choice")
        if name in names:
            return {"type": "function", "function": {"name": name}}
        raise InvalidCompletionRequest(f"tool_choice names a tool that is not in tools: {name!r}", "tool_choice")
    raise InvalidCompletionRequest(
        'tool_choice must be "none", "auto", "required" or {"type": "function", "function": {"name": ...}}', "tool_choice"
    )


def parse_tool_calls(value: Any, where: str) -> list[ToolCall]:
    """An assistant message's calls, arguments parsed, as LangChain's ``tool_calls``."""
    if value is None:
        return []
    if not isinstance(value, list) or not value:
        raise InvalidCompletionRequest(f"{where} must be a non-empty list of calls", where)
    calls: list[ToolCall] = []
    for index, call in enumerate(value):
        here = f"{where}[{index}]"
        if not isinstance(call, dict) or call.get("type", "function") != "function" or not isinstance(call.get("function"), dict):
            raise InvalidCompletionRequest(f'{here} must be {{"id", "type": "function", "function": {{"name", "arguments"}}}}', here)
        call_id = call.get("id")
        if not isinstance(call_id, str) or not 0 < len(call_id) <= MAX_CALL_ID_CHARS:
            raise InvalidCompletionRequest(f"{here}.id must be a string of 1 to {MAX_CALL_ID_CHARS} characters", f"{here}.id")
        name = _name(call["function"].get("name"), f"{here}.function.name")
        arguments = call["function"].get("arguments")
        if not isinstance(arguments, str):
            raise InvalidCompletionRequest(f"{here}.function.arguments must be a string of JSON", f"{here}.function.arguments")
        calls.append(ToolCall(id=call_id, name=name, args=_arguments(arguments, f"{here}.function.arguments"), type="tool_call"))
    return calls


def _arguments(text: str, where: str) -> dict[str, Any]:
    """A call's arguments, held to the body's own rules: JSON inside a string is still the client's JSON.

    No NaN or Infinity, no lone surrogate (it cannot be sent on as UTF-8),
    no nesting past the body's depth bound (RecursionError otherwise).
    Empty arguments are ``{}``, as models send them.
    """
    if not text.strip():
        return {}
    try:
        args = loads_strict(text, "The arguments text")
    except InvalidJSON as exc:
        raise InvalidCompletionRequest(f"{where}: {exc}", where) from None
    if not isinstance(args, dict):
        raise InvalidCompletionRequest(f"{where}: the arguments are not a JSON object", where)
    return args
