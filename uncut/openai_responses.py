"""Internal: OpenAI's Responses API wire format (``POST /v1/responses``), built from our events, with no web framework.

The openai SDK's ``client.responses.stream()`` checks the lifecycle strictly,
so this is a state machine over one stream's events, one output item at a
time:

``response.created`` (``output: []``) and ``response.in_progress`` first;
then per item ``response.output_item.added``, its deltas, and
``response.output_item.done``: a reasoning item (summary part and
``response.reasoning_summary_text.*``), a message (``content_part`` and
``response.output_text.*``) or one ``function_call`` per tool call
(``response.function_call_arguments.*``; parallel calls each have their own
``output_index``, so their fragments may interleave). Last comes
``response.completed`` carrying every finished item and the usage,
``response.incomplete`` when the token limit cut the answer, or
``response.failed`` with a safe error. Every event has ``sequence_number``.

``response()`` is the final Response object, which is also the body of a
non-streaming request.
"""

from __future__ import annotations

import json
import time
from typing import Any

from uncut.answers import CLIENT_GONE, error_reply
from uncut.eventlog import Event

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_encode_string = json.encoder.encode_basestring  # C; what _encode does to a str

# Our error types the SDK's strict ResponseError.code knows by another name; anything else is server_error.
_ERROR_CODES = {"rate_limited": "rate_limit_exceeded"}


def responses_usage(usage: dict[str, Any] | None) -> dict[str, Any]:
    """LangChain's usage_metadata in the Responses API's names."""
    usage = usage or {}
    given = int(usage.get("input_tokens", 0))
    produced = int(usage.get("output_tokens", 0))
    reasoning = int((usage.get("output_token_details") or {}).get("reasoning", 0))
    cached = int((usage.get("input_token_details") or {}).get("cache_read", 0))
    return {
        "input_tokens": given,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": produced,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": int(usage.get("total_tokens", given + produced)),
    }


def _call_key(data: dict[str, Any]) -> Any:
    """How an open call is found: its id, or its index when the model sent no id."""
    return data.get("id") or ("index", data.get("index"))


class _Item:
    """One output item being streamed: its index, its dict (as it will be in the final output), its text so far."""

    __slots__ = ("index", "item", "text")

    def __init__(self, index: int, item: dict[str, Any]) -> None:
        self.index = index
        self.item = item
        self.text: list[str] = []


class ResponsesFormat:
    """Frames one stream's events as Responses API SSE events; one instance per response.

    ``echo`` holds the request's fields that OpenAI echoes in the Response
    object (``model``, ``instructions``, ``tools``, ``tool_choice``,
    ``max_output_tokens``, ``metadata``...).
    """

    def __init__(self, stream_id: str, echo: dict[str, Any], created_at: int | None = None) -> None:
        self.response_id = f"resp_{stream_id}"
        self._stream_id = stream_id
        self._seq = 0
        self._items = 0  # ids are unique per response: msg_<stream>_0, fc_<stream>_1...
        self._output: list[dict[str, Any]] = []  # finished items, in output_index order of completion
        self._message: _Item | None = None
        self._reasoning: _Item | None = None
        self._calls: dict[Any, _Item] = {}  # open function calls by our call id
        self._base: dict[str, Any] = {
            "id": self.response_id,
            "object": "response",
            "created_at": created_at or int(time.time()),
            "status": "in_progress",
            "background": False,
            "error": None,
            "incomplete_details": None,
            "instructions": None,
            "max_output_tokens": None,
            "max_tool_calls": None,
            "model": "",
            "output": [],
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "service_tier": "default",
            "store": False,
            "temperature": None,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "top_p": None,
            "truncation": "disabled",
            "usage": None,
            "user": None,
            "metadata": {},
            **echo,
        }
        self.final: dict[str, Any] | None = None  # the Response once the stream has ended
        self.failure: dict[str, Any] | None = None  # our error body ({"type", "message", "retryable"}) if it failed

    # -- events ----------------------------------------------------------------

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return event

    def _new_item(self, prefix: str, item: dict[str, Any]) -> tuple[_Item, dict[str, Any]]:
        index = self._items
        self._items += 1
        entry = _Item(index, {"id": f"{prefix}_{self._stream_id}_{index}", **item})
        return entry, self._event("response.output_item.added", output_index=index, item=dict(entry.item))

    def _item_done(self, entry: _Item) -> dict[str, Any]:
        self._output.append(entry.item)
        return self._event("response.output_item.done", output_index=entry.index, item=entry.item)

    # -- the message ---------------------------------------------------------

    def _text(self, delta: str) -> list[dict[str, Any]]:
        out = self._close_reasoning()
        if self._message is None:
            self._message, added = self._new_item("msg", {"type": "message", "status": "in_progress", "role": "assistant", "content": []})
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            out += [
                added,
                self._event(
                    "response.content_part.added",
                    item_id=self._message.item["id"],
                    output_index=self._message.index,
                    content_index=0,
                    part=part,
                ),
            ]
        entry = self._message
        entry.text.append(delta)
        return out + [
            self._event(
                "response.output_text.delta", item_id=entry.item["id"], output_index=entry.index, content_index=0, delta=delta, logprobs=[]
            )
        ]

    def _close_message(self, status: str = "completed") -> list[dict[str, Any]]:
        entry = self._message
        if entry is None:
            return []
        self._message = None
        text = "".join(entry.text)
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        where = {"item_id": entry.item["id"], "output_index": entry.index, "content_index": 0}
        entry.item.update(status=status, content=[part])
        return [
            self._event("response.output_text.done", **where, text=text, logprobs=[]),
            self._event("response.content_part.done", **where, part=part),
            self._item_done(entry),
        ]

    # -- reasoning -----------------------------------------------------------

    def _reasoning_delta(self, delta: str) -> list[dict[str, Any]]:
        out = self._close_message()
        if self._reasoning is None:
            self._reasoning, added = self._new_item("rs", {"type": "reasoning", "summary": []})
            part = {"type": "summary_text", "text": ""}
            out += [
                added,
                self._event(
                    "response.reasoning_summary_part.added",
                    item_id=self._reasoning.item["id"],
                    output_index=self._reasoning.index,
                    summary_index=0,
                    part=part,
                ),
            ]
        entry = self._reasoning
        entry.text.append(delta)
        return out + [
            self._event(
                "response.reasoning_summary_text.delta", item_id=entry.item["id"], output_index=entry.index, summary_index=0, delta=delta
            )
        ]

    def _close_reasoning(self) -> list[dict[str, Any]]:
        entry = self._reasoning
        if entry is None:
            return []
        self._reasoning = None
        text = "".join(entry.text)
        part = {"type": "summary_text", "text": text}
        where = {"item_id": entry.item["id"], "output_index": entry.index, "summary_index": 0}
        entry.item["summary"] = [part]
        return [
            self._event("response.reasoning_summary_text.done", **where, text=text),
            self._event("response.reasoning_summary_part.done", **where, part=part),
            self._item_done(entry),
        ]

    # -- function calls ------------------------------------------------------

    def _call_begins(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        out = self._close_message() + self._close_reasoning()
        key = _call_key(data)
        call_id = data.get("id") or f"call_{self._stream_id}_{self._items}"
        entry, added = self._new_item(
            "fc", {"type": "function_call", "status": "in_progress", "call_id": call_id, "name": data.get("name") or "", "arguments": ""}
        )
        self._calls[key] = entry
        return out + [added]

    def _call_for(self, data: dict[str, Any]) -> _Item | None:
        return self._calls.get(_call_key(data))

    def _call_delta(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        entry = self._call_for(data)
        if entry is None or not data.get("args"):
            return []
        entry.text.append(data["args"])
        return [
            self._event("response.function_call_arguments.delta", item_id=entry.item["id"], output_index=entry.index, delta=data["args"])
        ]

    def _call_ends(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        key: Any = data.get("id")
        if not key:  # a call the model sent without an id: the oldest open one without an id
            key = next((k for k in self._calls if isinstance(k, tuple)), None)
        out: list[dict[str, Any]] = []
        if key not in self._calls:  # a call that arrived whole: it begins here
            out = self._call_begins(data)
            key = _call_key(data)
        entry = self._calls.pop(key)
        arguments = "".join(entry.text) if entry.text else (data.get("args_text") or json.dumps(data.get("args") or {}, ensure_ascii=False))
        entry.item.update(status="completed", arguments=arguments)
        out.append(
            self._event("response.function_call_arguments.done", item_id=entry.item["id"], output_index=entry.index, arguments=arguments)
        )
        return out + [self._item_done(entry)]

    # -- the stream's edges --------------------------------------------------

    def _close_all(self, status: str = "completed") -> list[dict[str, Any]]:
        out = self._close_message(status) + self._close_reasoning()
        for key in list(self._calls):  # calls the stream never finished
            entry = self._calls.pop(key)
            entry.item.update(status=status, arguments="".join(entry.text))
            out.append(self._item_done(entry))
        return out

    def _response(self, status: str, **fields: Any) -> dict[str, Any]:
        return {**self._base, "status": status, "output": list(self._output), **fields}

    def _end(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        cut = data.get("finish_reason") in ("length", "max_tokens")
        out = self._close_all("incomplete" if cut else "completed")
        usage = responses_usage(data.get("usage"))
        if cut:
            self.final = self._response("incomplete", incomplete_details={"reason": "max_output_tokens"}, usage=usage)
            return out + [self._event("response.incomplete", response=self.final)]
        self.final = self._response("completed", usage=usage, completed_at=int(time.time()))
        return out + [self._event("response.completed", response=self.final)]

    def _failed(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        error = data.get("error") or {}
        self.failure = error
        out = self._close_all("incomplete")
        kind = error.get("type", "server_error")
        message = f"{error.get('message') or 'The stream failed.'} ({kind})"
        self.final = self._response("failed", error={"code": _ERROR_CODES.get(kind, "server_error"), "message": message})
        return out + [self._event("response.failed", response=self.final)]

    def error_reply(self) -> tuple[int, dict[str, Any], bool]:
        """A failed non-streaming request as HTTP: status, OpenAI's error body, and whether a retry may help.

        No failure and no final Response: the client left before the end.
        """
        return error_reply(self.failure if self.failure is not None else CLIENT_GONE, openai_shape=True)

    def events(self, event: Event) -> list[dict[str, Any]]:
        """The Responses API events one of ours becomes (often none)."""
        kind, data = event.kind, event.data
        if kind == "token":
            return self._text(data["text"]) if data.get("text") else []
        if kind == "reasoning":
            return self._reasoning_delta(data["text"]) if data.get("text") else []
        if kind == "tool_call":
            return self._call_begins(data)
        if kind == "tool_call_delta":
            return self._call_delta(data)
        if kind == "tool_call_end":
            return self._call_ends(data)
        if kind == "start":
            created = self._response("in_progress")
            return [self._event("response.created", response=created), self._event("response.in_progress", response=created)]
        if kind == "end":
            return self._end(data)
        if kind == "error":
            return self._failed(data)
        return []

    def frame(self, event: Event) -> bytes:
        message = self._message
        if event.kind == "token" and message is not None and self._reasoning is None and event.data.get("text"):
            # The hot path, one per token: a delta to the open message, without a dict per event.
            delta = event.data["text"]
            message.text.append(delta)
            seq = self._seq
            self._seq += 1
            return (
                'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":'
                f'{seq},"item_id":"{message.item["id"]}","output_index":{message.index},"content_index":0,'
                f'"delta":{_encode_string(delta)},"logprobs":[]}}\n\n'
            ).encode("utf-8")
        return b"".join(
            b"event: " + e["type"].encode("ascii") + b"\ndata: " + _encode(e).encode("utf-8") + b"\n\n" for e in self.events(event)
        )
