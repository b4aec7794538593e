"""Internal: the OpenAI chat-completions wire format, built from our events, with no Flask.

Streams are ``data: {chat.completion.chunk}`` frames: a first chunk with the
assistant role, one per token, a last one with ``finish_reason``, a usage
chunk when asked for, then ``data: [DONE]``. A tool call is OpenAI's
``delta.tool_calls[i]``: the first fragment has ``index``, ``id``, ``type``
and ``function.name``, later ones ``index`` and ``function.arguments``. A
failure is ``data: {"error": {...}}`` and no ``[DONE]``, which the openai
SDK raises as ``APIError``.
"""

from __future__ import annotations

import json
from typing import Any

from uncut.eventlog import Event

DONE = b"data: [DONE]\n\n"


def openai_usage(usage: dict[str, Any] | None) -> dict[str, int]:
    """LangChain's usage_metadata in OpenAI's names."""
    usage = usage or {}
    prompt = int(usage.get("input_tokens", 0))
    completion = int(usage.get("output_tokens", 0))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": int(usage.get("total_tokens", prompt + completion))}


def openai_error(error: dict[str, Any]) -> dict[str, Any]:
    """Our error body ({"type", "message", ...}) in OpenAI's shape."""
    return {"error": {"message": error["message"], "type": error["type"], "param": None, "code": error.get("code")}}


def _data(payload: Any) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n\n"


def completion(
    completion_id: str,
    model: str,
    created: int,
    text: str,
    finish_reason: str,
    usage: dict[str, Any] | None,
    tool_calls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A whole ``chat.completion`` object; with tool calls, ``content`` is null unless the model also wrote text."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message = {"role": "assistant", "content": text or None, "tool_calls": tool_calls}
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": openai_usage(usage),
    }


class _HeldCall:
    """A call whose fragments wait until the call streaming before it has ended."""

    __slots__ = ("id", "name", "args", "ended")

    def __init__(self, call_id: str | None, name: str) -> None:
        self.id = call_id
        self.name = name
        self.args: list[str] = []
        self.ended = False


class ChunkFormat:
    """Frames one stream's events as chat.completion.chunk SSE data lines.

    OpenAI streams parallel calls one after the other, and its SDK's strict
    accumulator takes a new ``index`` as the end of the call before it. A
    model may interleave its calls' fragments, so a call that begins while
    another is streaming is held back, and follows, whole so far, once the
    one before it has ended.
    """

    def __init__(self, completion_id: str, model: str, created: int, include_usage: bool) -> None:
        self.base = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}
        self.include_usage = include_usage
        self._streaming: Any = None  # the index (ours) of the call whose fragments go out as they come
        self._wire_index = 0  # OpenAI's index of that call: 0, 1, ... in the order calls go out
        self._held: dict[Any, _HeldCall] = {}  # later calls, by our index, in the order they began
        self._index_of_id: dict[Any, Any] = {}

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        return _data({**self.base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]})

    def _call_begins(self, call_id: str | None, name: str, args: str = "") -> bytes:
        call = {"index": self._wire_index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
        out = self._chunk({"tool_calls": [call]})
        if args:
            out += self._call_args(args)
        return out

    def _call_args(self, args: str) -> bytes:
        return self._chunk({"tool_calls": [{"index": self._wire_index, "function": {"arguments": args}}]})

    def _next_calls(self, *, all_of_them: bool = False) -> bytes:
        """The streaming call ended: send held calls, up to the first that is still open (or all at the end)."""
        out = b""
        self._streaming = None
        while self._held:
            index = next(iter(self._held))
            held = self._held.pop(index)
            self._wire_index += 1
            out += self._call_begins(held.id, held.name, "".join(held.args))
            if not held.ended and not all_of_them:
                self._streaming = index
                break
        return out

    def frame(self, event: Event) -> bytes:
        kind, data = event.kind, event.data
        if kind == "token":
            return self._chunk({"content": data["text"]})
        if kind == "tool_call":
            self._index_of_id[data["id"]] = data["index"]
            if self._streaming is None and not self._held:
                self._streaming = data["index"]
                return self._call_begins(data["id"], data["name"])
            self._held[data["index"]] = _HeldCall(data["id"], data["name"])
            return b""
        if kind == "tool_call_delta":
            if data["index"] == self._streaming:
                return self._call_args(data["args"])
            if data["index"] in self._held:
                self._held[data["index"]].args.append(data["args"])
            return b""
        if kind == "tool_call_end":
            index = self._index_of_id.get(data["id"])
            if index is not None and index == self._streaming:
                return self._next_calls()
            if index in self._held:
                self._held[index].ended = True
            return b""
        if kind == "start":
            return self._chunk({"role": "assistant", "content": ""})
        if kind == "end":
            out = self._next_calls(all_of_them=True) if self._held else b""
            out += self._chunk({}, data.get("finish_reason") or "stop")
            if self.include_usage:
                out += _data({**self.base, "choices": [], "usage": openai_usage(data.get("usage"))})
            return out + DONE
        if kind == "error":
            return _data(openai_error(data["error"]))
        return b""
