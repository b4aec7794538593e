"""Internal: a whole answer gathered from a run's events: the body of a non-streaming request, with no web framework.

A non-streaming request is a run like any other (its admission slot, the
client's share, the deadline, the size caps, the disconnect watch): only
its events are collected instead of sent. ``Answer`` keeps what the JSON
needs (the text, the tool calls, the finish reason, the usage) or the
failure; ``failure_status`` is the HTTP status a failed one answers with,
the same for every surface.
"""

from __future__ import annotations

import json
from typing import Any

from uncut.errors import CLIENT_DISCONNECTED
from uncut.eventlog import Event

# A failed non-streaming answer's HTTP status, by its error type; other upstream_* are 502, anything else 500.
# too_large is the client's to fix (ask for less: max_tokens), so a 4xx, and never retried (x-should-retry: false).
FAILURE_STATUS = {
    "rate_limited": 429,
    "upstream_timeout": 504,
    "timeout": 504,
    "too_large": 422,
    "cancelled": 499,
    "client_disconnected": 499,
    "slow_client": 499,
    "server_shutdown": 503,
    "store_unavailable": 503,
    "producer_lost": 503,
}
CLIENT_GONE = CLIENT_DISCONNECTED["error"]


def failure_status(kind: str) -> int:
    return FAILURE_STATUS.get(kind, 502 if kind.startswith("upstream") else 500)


class _Call:
    __slots__ = ("id", "name", "index", "args", "ended")

    def __init__(self, call_id: str | None, name: str, index: Any) -> None:
        self.id = call_id
        self.name = name
        self.index = index
        self.args: list[str] = []
        self.ended = False


class Answer:
    """One run's events, kept as the whole answer; ``frame`` is what the relay hands each event to."""

    def __init__(self) -> None:
        self._text: list[str] = []
        self._calls: list[_Call] = []
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] = {}
        self.completed = False
        self.failure: dict[str, Any] | None = None  # our error body ({"type", "message", "retryable"}) if it failed

    @property
    def text(self) -> str:
        return "".join(self._text)

    def _open_call(self, data: dict[str, Any]) -> _Call | None:
        """The open call an event belongs to: by index (tool_call_delta), else by id, else the oldest without an id."""
        open_calls = [call for call in self._calls if not call.ended]
        if "index" in data:
            found = [call for call in open_calls if call.index == data["index"]]
            if found:
                return found[-1]
        if data.get("id"):
            return next((call for call in open_calls if call.id == data["id"]), None)
        return next((call for call in open_calls if call.id is None), None)

    def frame(self, event: Event) -> bytes:
        """Keep what the event adds to the answer; nothing is sent."""
        kind, data = event.kind, event.data
        if kind == "token":
            self._text.append(data.get("text") or "")
        elif kind == "tool_call":
            self._calls.append(_Call(data.get("id"), data.get("name") or "", data.get("index")))
        elif kind == "tool_call_delta":
            call = self._open_call(data)
            if call is not None and data.get("args"):
                call.args.append(data["args"])
        elif kind == "tool_call_end":
            call = self._open_call({k: v for k, v in data.items() if k != "index"})
            if call is None:  # a call that arrived whole
                call = _Call(data.get("id"), data.get("name") or "", None)
                self._calls.append(call)
            if not call.args:
                call.args.append(data.get("args_text") or json.dumps(data.get("args") or {}, ensure_ascii=False))
            call.ended = True
        elif kind == "end":
            self.completed = True
            self.finish_reason = data.get("finish_reason") or "stop"
            self.usage = dict(data.get("usage") or {})
        elif kind == "error":
            self.failure = dict(data.get("error") or {})
        return b""

    def tool_calls(self) -> list[dict[str, Any]]:
        """The calls in OpenAI's shape, their arguments as the model sent them."""
        return [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": "".join(call.args)}} for call in self._calls
        ]

    def error(self) -> dict[str, Any]:
        """Why there is no whole answer: the run's error, or the client that left before it."""
        if self.failure is not None:
            return self.failure
        return dict(CLIENT_GONE)

    def error_reply(self, openai_shape: bool) -> tuple[int, dict[str, Any], bool]:
        """The failure as HTTP: status, the error body (OpenAI's shape on /v1), and whether a retry may help."""
        return error_reply(self.error(), openai_shape)


def error_reply(error: dict[str, Any], openai_shape: bool) -> tuple[int, dict[str, Any], bool]:
    """A failed non-streaming request as HTTP: status, the error body, and whether a retry may help."""
    kind = error.get("type", "server_error")
    message = error.get("message", "The response failed.")
    retryable = bool(error.get("retryable"))
    if openai_shape:
        body: dict[str, Any] = {"error": {"message": message, "type": kind, "param": None, "code": kind}}
    else:
        body = {"error": {"type": kind, "message": message, "retryable": retryable}}
    return failure_status(kind), body, retryable
