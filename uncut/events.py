"""Internal: one event model for rich streams: what a runnable streams, as named events.

A chat model streams ``AIMessageChunk``s that may carry text, reasoning and
fragments of tool calls; a chain may stream strings or dicts; a LangGraph
graph streams messages from every node, tool results included
(``uncut.graphs`` feeds those here). ``StreamEvents`` turns each item into
the wire's events and hands them to ``emit(kind, data)``:

- ``token`` ``{"text"}``: assistant text only, never tool output or echoed input;
- ``reasoning`` ``{"text"}``: reasoning or thinking deltas;
- ``tool_call`` ``{"id", "name", "index"}``, then ``tool_call_delta``
  ``{"id", "index", "args"}`` per fragment of the JSON arguments, then
  ``tool_call_end`` ``{"id", "name", "args"}`` with the arguments parsed
  (invalid JSON: ``"args": null`` with ``"args_text"`` and ``"error"``);
- ``tool_result`` ``{"tool_call_id", "name", "content", "status"}``.

Fragments of parallel calls are told apart by their ``index``, as OpenAI
streams them. A call ends when its message does: at the message's finish
reason or last chunk (LangChain ends every streamed message with one), when
a tool result or another node's update arrives, or when the stream ends.
Items that carry nothing emit nothing.

Text is always encodable: a model that splits a character outside the
Basic Multilingual Plane (an emoji) across two chunks gives two lone UTF-16
surrogates after JSON decoding; the first is held until the next chunk
completes it, and any surrogate left alone becomes U+FFFD. The same holds
for each tool call's argument fragments, per call. Imports nothing from
Flask.
"""

from __future__ import annotations

import json
from collections import abc
from typing import Any, Callable

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.messages.ai import UsageMetadata, add_usage

Emit = Callable[[str, dict[str, Any]], None]

# Content-block types whose text is the model's reasoning: LangChain's standard
# block, OpenAI Responses' reasoning summaries and Anthropic's thinking.
_REASONING_BLOCKS = frozenset({"reasoning", "thinking"})


def chunk_text(chunk: Any) -> str:
    """The text a streamed item adds: message chunks, strings, or dicts with text.

    Message chunks give their text content (content blocks of other types,
    such as tool calls, add nothing); strings are themselves; a dict gives
    its ``"text"``, ``"content"``, ``"answer"`` or ``"output"`` value, the
    first that is present, recursively.
    """
    if chunk is None:
        return ""
    if isinstance(chunk, str):
        return chunk
    content = getattr(chunk, "content", None)  # message chunks first: one per token
    if isinstance(content, str):
        return content
    if isinstance(chunk, abc.Mapping):
        for key in ("text", "content", "answer", "output"):
            if key in chunk:
                return chunk_text(chunk[key])
        return ""
    if isinstance(content, list):
        return "".join(
            part if isinstance(part, str) else str(part.get("text", ""))
            for part in content
            if isinstance(part, str) or (isinstance(part, abc.Mapping) and part.get("type") == "text")
        )
    return ""


def clean_text(text: str) -> str:
    """``text`` with surrogate pairs joined and lone surrogates replaced: always encodable as UTF-8."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types with encodable text: what a tool or a graph's writer produced may be any object."""
    try:
        return json.loads(clean_text(json.dumps(value, default=str, ensure_ascii=False)))
    except (TypeError, ValueError):  # circular, or a key that is not a string
        return clean_text(str(value))


def parse_arguments(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """A tool call's arguments as an object, or None and why not. Empty arguments are ``{}``."""
    if not text.strip():
        return {}, None
    try:
        args = json.loads(text)
    except RecursionError:  # a model's arguments nested thousands deep: not ours to crash on
        return None, "the arguments are nested too deeply"
    except ValueError:
        return None, "the arguments are not valid JSON"
    if not isinstance(args, dict):
        return None, "the arguments are not a JSON object"
    return args, None


def _reasoning_text(block: abc.Mapping[str, Any]) -> str:
    reasoning = block.get("reasoning")
    if isinstance(reasoning, str):
        return reasoning
    thinking = block.get("thinking")
    if isinstance(thinking, str):
        return thinking
    summary = block.get("summary")
    if isinstance(summary, list):
        return "".join(str(part.get("text", "")) for part in summary if isinstance(part, abc.Mapping))
    return ""


def tool_result_data(message: ToolMessage) -> dict[str, Any]:
    """A tool's output as the ``tool_result`` event's data."""
    content = clean_text(message.content) if isinstance(message.content, str) else jsonable(message.content)
    status = getattr(message, "status", "success")
    return {"tool_call_id": message.tool_call_id, "name": message.name, "content": content, "status": status}


class _ToolCall:
    """One call being streamed: its fragments, joined."""

    __slots__ = ("id", "name", "index", "args_text", "started", "held")

    def __init__(self, index: Any, call_id: str | None, name: str | None) -> None:
        self.index = index
        self.id = call_id
        self.name = name
        self.args_text = ""
        self.started = False
        self.held = ""  # a high surrogate that ended the last fragment, waiting for its pair

    def take(self, fragment: str) -> str:
        """A fragment of arguments made encodable, as text is: half of a pair waits for the next fragment."""
        if not self.held and fragment.isascii():
            return fragment
        text, self.held = self.held + fragment, ""
        if text and "\ud800" <= text[-1] <= "\udbff":
            text, self.held = text[:-1], text[-1]
        return clean_text(text)

    def end_data(self) -> dict[str, Any]:
        args, error = parse_arguments(self.args_text)
        data: dict[str, Any] = {"id": self.id, "name": self.name or "", "args": args}
        if error is not None:
            data["args_text"] = self.args_text
            data["error"] = error if self.name else "the model sent no tool name"
        elif not self.name:
            data["error"] = "the model sent no tool name"
        return data


class StreamEvents:
    """Turns streamed items into events, keeping what spans items: open tool calls, usage, finish reason."""

    def __init__(self, emit: Emit) -> None:
        self._emit = emit
        self._calls: dict[Any, _ToolCall] = {}  # open calls of the current message, by index
        self.finish_reason: str | None = None
        self.usage: UsageMetadata | None = None
        self.tool_calls: list[dict[str, Any]] = []  # every call that ended, as tool_call_end gave it
        self._held: dict[str, str] = {}  # per kind of text, a high surrogate waiting for its pair in the next chunk

    # -- items ------------------------------------------------------------

    def feed(self, item: Any) -> None:
        """One item of ``runnable.stream()``: a message (chunk), a string, or a dict with text."""
        if isinstance(item, BaseMessage):
            self.message(item)
            return
        self._say("token", chunk_text(item))

    def _say(self, kind: str, text: str) -> None:
        """Emit text (a token or reasoning) that is always encodable."""
        if self._held or not text.isascii():
            held = self._held.pop(kind, "")
            text = held + text
            if text and "\ud800" <= text[-1] <= "\udbff":  # half of a pair: the other half comes next
                self._held[kind] = text[-1]
                text = text[:-1]
            text = clean_text(text)
        if text:
            self._emit(kind, {"text": text})

    def message(self, message: BaseMessage) -> None:
        """A message chunk or a whole message, from a model or (in a graph) from any node."""
        if isinstance(message, AIMessage):
            self._ai_message(message)
        elif isinstance(message, ToolMessage):
            self.end_calls()
            self._emit("tool_result", tool_result_data(message))
        # Human and system messages are input, never echoed back.

    def close(self) -> None:
        """The stream ended: calls still open end now, and half a character becomes U+FFFD."""
        held, self._held = self._held, {}
        for kind in held:
            self._emit(kind, {"text": "\ufffd"})
        self.end_calls()

    # -- AI messages ------------------------------------------------------

    def _ai_message(self, message: AIMessage) -> None:
        content = message.content
        if type(content) is str:
            if message.additional_kwargs:
                self._reasoning_kwargs(message.additional_kwargs)
            if content:
                self._say("token", content)
        else:
            if message.additional_kwargs:
                self._reasoning_kwargs(message.additional_kwargs)
            self._blocks(content)
        if isinstance(message, AIMessageChunk):
            if message.tool_call_chunks:
                self._call_chunks(message.tool_call_chunks)
        elif message.tool_calls or message.invalid_tool_calls:
            self._whole_calls(message)
        metadata = message.response_metadata
        finish_reason = metadata.get("finish_reason") if metadata else None
        if finish_reason:
            self.finish_reason = finish_reason
        if message.usage_metadata:
            self.usage = add_usage(self.usage, message.usage_metadata) if self.usage else message.usage_metadata.copy()
        if self._calls and (finish_reason or getattr(message, "chunk_position", None) == "last"):
            self.end_calls()

    def _reasoning_kwargs(self, kwargs: dict[str, Any]) -> None:
        reasoning = kwargs.get("reasoning_content")  # DeepSeek-style providers
        if isinstance(reasoning, str) and reasoning:
            self._say("reasoning", reasoning)

    def _blocks(self, content: abc.Iterable[Any]) -> None:
        for block in content:
            if isinstance(block, str):
                self._say("token", block)
                continue
            if not isinstance(block, abc.Mapping):
                continue
            kind = block.get("type")
            if kind == "text":
                text = block.get("text")
                if isinstance(text, str):
                    self._say("token", text)
            elif kind in _REASONING_BLOCKS:
                self._say("reasoning", _reasoning_text(block))

    # -- tool calls -------------------------------------------------------

    def _call_chunks(self, chunks: list[Any]) -> None:
        for fragment in chunks:
            index = fragment.get("index")
            call_id = fragment.get("id")
            key = index if index is not None else call_id
            call = self._calls.get(key)
            if call is None:
                if key is None and len(self._calls) == 1:  # no index and no id: the call in progress
                    call = next(iter(self._calls.values()))
                else:
                    call = self._calls[key] = _ToolCall(index if index is not None else len(self._calls), call_id, None)
            if call_id and not call.id:
                call.id = clean_text(call_id)
            name = fragment.get("name")
            if name and not call.name:
                call.name = clean_text(name)
            args = call.take(fragment.get("args") or "")
            if not call.started and call.name:
                call.started = True
                self._emit("tool_call", {"id": call.id, "name": call.name, "index": call.index})
                if call.args_text:  # fragments that came before the name
                    self._emit("tool_call_delta", {"id": call.id, "index": call.index, "args": call.args_text})
            if args:
                call.args_text += args
                if call.started:
                    self._emit("tool_call_delta", {"id": call.id, "index": call.index, "args": args})

    def _whole_calls(self, message: AIMessage) -> None:
        """A message that arrived whole (a model that did not stream): each call begins, sends its arguments and ends."""
        self.end_calls()
        calls: list[tuple[str | None, str | None, str]] = [
            (c.get("id"), c.get("name"), json.dumps(c.get("args") or {}, ensure_ascii=False)) for c in message.tool_calls
        ]
        calls += [(c.get("id"), c.get("name"), c.get("args") or "") for c in message.invalid_tool_calls]
        for index, (call_id, name, args_text) in enumerate(calls):
            call = _ToolCall(index, call_id, name)
            self._calls[index] = call
            call.started = bool(name)
            if call.started:
                self._emit("tool_call", {"id": call_id, "name": name, "index": index})
            call.args_text = args_text = clean_text(args_text)
            if call.started and args_text:
                self._emit("tool_call_delta", {"id": call_id, "index": index, "args": args_text})
        self.end_calls()

    def end_calls(self) -> None:
        """Every open call is complete: parse its arguments and say so."""
        if not self._calls:
            return
        calls, self._calls = self._calls, {}
        for call in calls.values():
            if call.held:  # the pair never came: U+FFFD, as for text
                call.held = ""
                call.args_text += "\ufffd"
                if call.started:
                    self._emit("tool_call_delta", {"id": call.id, "index": call.index, "args": "\ufffd"})
            if not call.started:
                call.started = True
                self._emit("tool_call", {"id": call.id, "name": call.name or "", "index": call.index})
                if call.args_text:
                    self._emit("tool_call_delta", {"id": call.id, "index": call.index, "args": call.args_text})
            data = call.end_data()
            self.tool_calls.append(data)
            self._emit("tool_call_end", data)
