"""The OpenAI chat-completions wire format, built from our events, with no Flask.

Streams are ``data: {chat.completion.chunk}`` frames: a first chunk with the
assistant role, one per token, a last one with ``finish_reason``, a usage
chunk when asked for, then ``data: [DONE]``. A failure is
``data: {"error": {...}}`` and no ``[DONE]``, which the openai SDK raises as
``APIError``.
"""

from __future__ import annotations

import json
from typing import Any

from webapp.eventlog import Event

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


def completion(completion_id: str, model: str, created: int, text: str, finish_reason: str, usage: dict[str, Any] | None) -> dict[str, Any]:
    """A whole ``chat.completion`` object."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}],
        "usage": openai_usage(usage),
    }


class ChunkFormat:
    """Frames one stream's events as chat.completion.chunk SSE data lines."""

    def __init__(self, completion_id: str, model: str, created: int, include_usage: bool) -> None:
        self.base = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}
        self.include_usage = include_usage

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        return _data({**self.base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]})

    def frame(self, event: Event) -> bytes:
        if event.kind == "start":
            return self._chunk({"role": "assistant", "content": ""})
        if event.kind == "token":
            return self._chunk({"content": event.data["text"]})
        if event.kind == "end":
            out = self._chunk({}, event.data.get("finish_reason") or "stop")
            if self.include_usage:
                out += _data({**self.base, "choices": [], "usage": openai_usage(event.data.get("usage"))})
            return out + DONE
        if event.kind == "error":
            return _data(openai_error(event.data["error"]))
        return b""
