"""The Vercel AI SDK's "UI message stream", built from our events, with no web framework.

``useChat`` and ``DefaultChatTransport`` read ``data: {chunk}`` frames and
check their order strictly (a ``text-delta`` needs an open ``text-start``
with the same id, and a ``finish-step`` closes every open part), so this is
a small state machine over one stream's events:

- ``start`` opens the message (``start{messageId}``); content opens a step
  (``start-step``) lazily, and a graph's ``step`` event closes it
  (``finish-step``): each model round is one step, as in ``streamText``;
- runs of ``token`` and ``reasoning`` become ``text-*`` / ``reasoning-*``
  parts with fresh ids;
- a tool call becomes ``tool-input-start``, ``tool-input-delta``\\*, then
  ``tool-input-available`` (or ``tool-input-error`` for invalid arguments);
  its result ``tool-output-available`` or ``tool-output-error``;
- a graph's ``custom`` writes become ``data-custom`` parts, an interrupt
  ``data-interrupt``;
- ``end`` closes everything: ``finish{finishReason}`` then ``data: [DONE]``;
  an error is ``error{errorText}`` (the safe message, no details), a
  cancel ``abort``.

The message id is derived from the stream id, so a replay (the resume
endpoint re-frames the whole log with a fresh formatter) rebuilds the same
message, which the client swaps in place. Heartbeats are SSE comments.
"""

from __future__ import annotations

import json
from typing import Any

from uncut.eventlog import Event

DONE = b"data: [DONE]\n\n"

# The protocol's own header; the client does not check it, the spec asks for it.
HEADERS = (("x-vercel-ai-ui-message-stream", "v1"),)

# Our finish reasons (OpenAI's, LangChain's) in the AI SDK's vocabulary.
_FINISH_REASONS = {
    "stop": "stop", "length": "length", "max_tokens": "length", "tool_calls": "tool-calls",
    "content_filter": "content-filter", "end_turn": "stop",
}

RESTARTING = "The server is restarting; resume the stream to get the rest of the answer."

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_encode_string = json.encoder.encode_basestring  # C; what _encode does to a str


def chunk(payload: dict[str, Any]) -> bytes:
    """One UI message chunk as an SSE frame."""
    return b"data: " + _encode(payload).encode("utf-8") + b"\n\n"


def message_id(stream_id: str) -> str:
    return f"msg_{stream_id}"


class UIMessageFormat:
    """Frames one stream's events as UI message chunks; one instance per response, fed in order."""

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        self._step_open = False
        self._text_id: str | None = None  # the open text part, if any
        self._reasoning_id: str | None = None
        self._parts = 0  # part ids are unique per response: t1, r2, t3...
        self._call_ids: dict[Any, str] = {}  # our call id (or index, when the model sent none) -> toolCallId
        self._announced: set[str] = set()  # toolCallIds the client has a part for

    # -- parts ---------------------------------------------------------------

    def _open_step(self) -> list[dict[str, Any]]:
        if self._step_open:
            return []
        self._step_open = True
        return [{"type": "start-step"}]

    def _close_parts(self) -> list[dict[str, Any]]:
        out = []
        if self._text_id is not None:
            out.append({"type": "text-end", "id": self._text_id})
            self._text_id = None
        if self._reasoning_id is not None:
            out.append({"type": "reasoning-end", "id": self._reasoning_id})
            self._reasoning_id = None
        return out

    def _close_step(self) -> list[dict[str, Any]]:
        out = self._close_parts()
        if self._step_open:
            out.append({"type": "finish-step"})
            self._step_open = False
        return out

    def _next_part_id(self, prefix: str) -> str:
        self._parts += 1
        return f"{prefix}{self._parts}"

    def _text(self, delta: str) -> list[dict[str, Any]]:
        out = self._open_step()
        if self._text_id is None:
            out += self._close_parts()
            self._text_id = self._next_part_id("t")
            out.append({"type": "text-start", "id": self._text_id})
        out.append({"type": "text-delta", "id": self._text_id, "delta": delta})
        return out

    def _reasoning(self, delta: str) -> list[dict[str, Any]]:
        out = self._open_step()
        if self._reasoning_id is None:
            out += self._close_parts()
            self._reasoning_id = self._next_part_id("r")
            out.append({"type": "reasoning-start", "id": self._reasoning_id})
        out.append({"type": "reasoning-delta", "id": self._reasoning_id, "delta": delta})
        return out

    # -- tools ---------------------------------------------------------------

    def _call_id(self, call_id: Any, fallback: Any) -> str:
        """The client's toolCallId: the model's id, or one of ours when it sent none (ids must be strings)."""
        key = call_id if isinstance(call_id, str) and call_id else ("index", fallback)
        found = self._call_ids.get(key)
        if found is None:
            found = call_id if isinstance(call_id, str) and call_id else f"call_{self.stream_id}_{len(self._call_ids)}"
            self._call_ids[key] = found
        return found

    def _tool_call(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        out = self._open_step() + self._close_parts()
        call_id = self._call_id(data.get("id"), data.get("index"))
        self._announced.add(call_id)
        return out + [{"type": "tool-input-start", "toolCallId": call_id, "toolName": data.get("name") or ""}]

    def _tool_delta(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        call_id = self._call_id(data.get("id"), data.get("index"))
        if call_id not in self._announced or not data.get("args"):
            return []
        return [{"type": "tool-input-delta", "toolCallId": call_id, "inputTextDelta": data["args"]}]

    def _tool_end(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        out = self._open_step()
        call_id = self._call_id(data.get("id"), None)
        self._announced.add(call_id)
        name = data.get("name") or ""
        if data.get("args") is None:
            error = f"Invalid tool input: {data.get('error') or 'the arguments are not valid'}"
            return out + [{"type": "tool-input-error", "toolCallId": call_id, "toolName": name, "input": data.get("args_text", ""), "errorText": error}]
        return out + [{"type": "tool-input-available", "toolCallId": call_id, "toolName": name, "input": data["args"]}]

    def _tool_result(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        call_id = self._call_id(data.get("tool_call_id"), None)
        out: list[dict[str, Any]] = self._close_parts()
        if call_id not in self._announced:  # an output needs its call's part, or the client throws
            out += self._open_step()
            out.append({"type": "tool-input-available", "toolCallId": call_id, "toolName": data.get("name") or "", "input": None})
            self._announced.add(call_id)
        content = data.get("content")
        if data.get("status") == "error":
            text = content if isinstance(content, str) else _encode(content)
            return out + [{"type": "tool-output-error", "toolCallId": call_id, "errorText": text}]
        return out + [{"type": "tool-output-available", "toolCallId": call_id, "output": content}]

    # -- the stream's edges --------------------------------------------------

    def _end(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        reason = data.get("finish_reason") or "stop"
        finish = "tool-calls" if data.get("tool_calls") else _FINISH_REASONS.get(reason, "other")
        return self._close_step() + [{"type": "finish", "finishReason": finish}]

    def _error(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        error = data.get("error") or {}
        out = self._close_step()
        if error.get("type") == "cancelled":
            return out + [{"type": "abort", "reason": error.get("message", "cancelled")}]
        return out + [{"type": "error", "errorText": error.get("message") or "The stream failed."}]

    def chunks(self, event: Event) -> list[dict[str, Any]]:
        """The chunks one event becomes (often none)."""
        kind, data = event.kind, event.data
        if kind == "token":
            return self._text(data["text"]) if data.get("text") else []
        if kind == "reasoning":
            return self._reasoning(data["text"]) if data.get("text") else []
        if kind == "tool_call":
            return self._tool_call(data)
        if kind == "tool_call_delta":
            return self._tool_delta(data)
        if kind == "tool_call_end":
            return self._tool_end(data)
        if kind == "tool_result":
            return self._tool_result(data)
        if kind == "step":
            return self._close_step()
        if kind in ("custom", "interrupt"):
            return self._open_step() + self._close_parts() + [{"type": f"data-{kind}", "data": data}]
        if kind == "start":
            return [{"type": "start", "messageId": message_id(self.stream_id)}]
        if kind == "end":
            return self._end(data)
        if kind == "error":
            return self._error(data)
        return []

    def frame(self, event: Event) -> bytes:
        if event.kind == "token" and self._text_id is not None and event.data.get("text"):
            # The hot path, one per token: a delta to the open text part, without a dict per chunk.
            return f'data: {{"type":"text-delta","id":"{self._text_id}","delta":{_encode_string(event.data["text"])}}}\n\n'.encode("utf-8")
        out = b"".join(chunk(c) for c in self.chunks(event))
        return out + DONE if event.terminal else out

    @staticmethod
    def moved() -> bytes:
        """The worker is draining and this reader leaves; the run goes on. The client is told to resume."""
        return chunk({"type": "error", "errorText": RESTARTING}) + DONE
