"""Internal: the Vercel AI SDK's "UI message stream", built from our events, with no web framework.

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
  ``data-interrupt``, except ``HumanInTheLoopMiddleware``'s: each of its
  action requests becomes ``tool-approval-request{approvalId, toolCallId}``
  on the call it names (``approvalId`` is ``<interrupt id>:<index>``), and
  the message finishes with ``tool-calls``;
- a run that continues a message (its approvals answered, ``uncut.ui_threads``)
  says so in its ``start`` event: the message keeps its id, the calls it
  already shows are not announced again, and a denied call's result is
  ``tool-output-denied``;
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
    "stop": "stop",
    "length": "length",
    "max_tokens": "length",
    "tool_calls": "tool-calls",
    "content_filter": "content-filter",
    "end_turn": "stop",
}

RESTARTING = "The server is restarting; resume the stream to get the rest of the answer."

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_encode_string = json.encoder.encode_basestring  # C; what _encode does to a str


def chunk(payload: dict[str, Any]) -> bytes:
    """One UI message chunk as an SSE frame."""
    return b"data: " + _encode(payload).encode("utf-8") + b"\n\n"


def message_id(stream_id: str) -> str:
    return f"msg_{stream_id}"


# Keys of a run's ``start`` event when it continues an assistant message (set by uncut.ui_threads).
CONTINUES_MESSAGE = "ui_message_id"  # the message's id: the client appends to it instead of starting another
KNOWN_CALLS = "ui_tool_call_ids"  # the tool calls the message shows already
DENIED_CALLS = "ui_denied_tool_call_ids"  # the calls the user denied: their results are denials


def approval_id(interrupt_id: str, index: int) -> str:
    """The ``approvalId`` of an interrupt's ``index``-th action request: what the client's answer names."""
    return f"{interrupt_id}:{index}"


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
        self._ended_calls: list[tuple[str, str, Any]] = []  # (toolCallId, name, args) in the order the calls ended
        self._asked: set[str] = set()  # toolCallIds with an approval request
        self._denied: set[str] = set()
        self._message_id = message_id(stream_id)

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
        self._ended_calls.append((call_id, name, data.get("args")))
        if data.get("args") is None:
            error = f"Invalid tool input: {data.get('error') or 'the arguments are not valid'}"
            failed = {
                "type": "tool-input-error",
                "toolCallId": call_id,
                "toolName": name,
                "input": data.get("args_text", ""),
                "errorText": error,
            }
            return out + [failed]
        return out + [{"type": "tool-input-available", "toolCallId": call_id, "toolName": name, "input": data["args"]}]

    def _tool_result(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        call_id = self._call_id(data.get("tool_call_id"), None)
        out: list[dict[str, Any]] = self._close_parts()
        if call_id not in self._announced:  # an output needs its call's part, or the client throws
            out += self._open_step()
            out.append({"type": "tool-input-available", "toolCallId": call_id, "toolName": data.get("name") or "", "input": None})
            self._announced.add(call_id)
        content = data.get("content")
        if call_id in self._denied:
            return out + [{"type": "tool-output-denied", "toolCallId": call_id}]
        if data.get("status") == "error":
            text = content if isinstance(content, str) else _encode(content)
            return out + [{"type": "tool-output-error", "toolCallId": call_id, "errorText": text}]
        return out + [{"type": "tool-output-available", "toolCallId": call_id, "output": content}]

    # -- approvals -----------------------------------------------------------

    def _interrupt(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        """An approval interrupt's requests on the calls they name; any other interrupt as ``data-interrupt``.

        The requests open no step: they belong to the step whose calls they
        name, and the SDK's ``lastAssistantMessageIsCompleteWithApprovalResponses``
        looks for them after the message's last ``step-start`` (a new step
        there, with no tool part, and the answer is never sent).
        """
        out = self._close_parts()
        requests: list[dict[str, Any]] = []
        others: list[Any] = []
        for interrupt in data.get("interrupts") or []:
            found = self._approval_requests(interrupt)
            if found is None:
                others.append(interrupt)
            else:
                requests += found
        if others or not requests:
            out += self._open_step() + [{"type": "data-interrupt", "data": {"interrupts": others} if requests else data}]
        return out + requests

    def _approval_requests(self, interrupt: Any) -> list[dict[str, Any]] | None:
        """``tool-approval-request`` per action request, or None when this is not an approval of calls shown here.

        The middleware lists the calls it pauses in the model's order, with
        their name and arguments; each is matched to the first call not yet
        matched with the same name and arguments (the same name alone, if
        none has both).
        """
        value = interrupt.get("value") if isinstance(interrupt, dict) else None
        actions = value.get("action_requests") if isinstance(value, dict) else None
        interrupt_id = interrupt.get("id") if isinstance(interrupt, dict) else None
        if not isinstance(actions, list) or not actions or not isinstance(interrupt_id, str):
            return None
        free = [call for call in self._ended_calls if call[0] not in self._asked]
        chosen: list[str] = []
        for action in actions:
            if not isinstance(action, dict):
                return None
            same = [c for c in free if c[1] == action.get("name") and c[0] not in chosen]
            exact = [c for c in same if c[2] == action.get("args")]
            if not (exact or same):
                return None
            chosen.append((exact or same)[0][0])
        self._asked.update(chosen)
        return [
            {"type": "tool-approval-request", "approvalId": approval_id(interrupt_id, i), "toolCallId": call_id}
            for i, call_id in enumerate(chosen)
        ]

    # -- the stream's edges --------------------------------------------------

    def _start(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        continued = data.get(CONTINUES_MESSAGE)
        if isinstance(continued, str) and continued:
            self._message_id = continued
            known = [c for c in data.get(KNOWN_CALLS) or [] if isinstance(c, str)]
            self._announced.update(known)
            self._call_ids.update({c: c for c in known})
            self._denied.update(c for c in data.get(DENIED_CALLS) or [] if isinstance(c, str))
        return [{"type": "start", "messageId": self._message_id}]

    def _end(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        reason = data.get("finish_reason") or "stop"
        finish = "tool-calls" if data.get("tool_calls") or (reason == "interrupt" and self._asked) else _FINISH_REASONS.get(reason, "other")
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
        if kind == "custom":
            return self._open_step() + self._close_parts() + [{"type": "data-custom", "data": data}]
        if kind == "interrupt":
            return self._interrupt(data)
        if kind == "start":
            return self._start(data)
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
