"""Internal: Server-Sent Events framing and parsing, byte-exact, with no Flask.

Framing follows the WHATWG event-stream format: each field on its own line,
``data`` split on every line break so multi-line payloads survive, a blank
line ends the event. The parser is the same format read back; tests and the
probe use it, and it is tolerant of CRLF and CR line endings as the spec is.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

_LINE_BREAK = re.compile(r"\r\n|\r|\n")

HEARTBEAT = b": ping\n\n"
# For browsers, whose EventSource hides comments: an event without an id, so Last-Event-ID is untouched.
HEARTBEAT_EVENT = b"event: heartbeat\ndata: {}\n\n"


def _check_field(name: str, value: str) -> None:
    if "\n" in value or "\r" in value:  # what _LINE_BREAK matches, without a regex per event
        raise ValueError(f"SSE {name} must not contain a line break: {value!r}")


def format_event(data: str, *, event: str | None = None, id: str | None = None) -> bytes:
    """One event as bytes; ``data`` may span lines."""
    lines: list[str] = []
    if id is not None:
        _check_field("id", id)
        lines.append(f"id: {id}")
    if event is not None:
        _check_field("event", event)
        lines.append(f"event: {event}")
    lines.extend(f"data: {line}" for line in _LINE_BREAK.split(data))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


# One encoder for every event: json.dumps with options builds a new encoder per call.
_encode_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_encode_string = json.encoder.encode_basestring  # C; the same output for a str as the encoder above


def _compact_json(payload: Any) -> str:
    """Compact JSON; a token's ``{"text": ...}`` (one per token: the hot path) skips the dict encoder's set-up."""
    if type(payload) is dict and len(payload) == 1 and type(payload.get("text")) is str:
        return '{"text":' + _encode_string(payload["text"]) + "}"
    return _encode_compact(payload)


def format_json_event(payload: Any, *, event: str | None = None, id: str | None = None) -> bytes:
    """One event whose data is compact JSON: always a single line (JSON escapes CR and LF)."""
    head = ""
    if id is not None:
        _check_field("id", id)
        head = f"id: {id}\n"
    if event is not None:
        _check_field("event", event)
        head += f"event: {event}\n"
    return f"{head}data: {_compact_json(payload)}\n\n".encode("utf-8")


def format_comment(text: str) -> bytes:
    """A comment line; clients ignore it, proxies see bytes and reset idle timers."""
    if not text:
        raise ValueError("an empty comment would be an empty write, which servers drop")
    return "".join(f": {line}\n" for line in _LINE_BREAK.split(text)).encode("utf-8") + b"\n"


def format_retry(milliseconds: int) -> bytes:
    """The reconnection delay a browser's EventSource will use, as a block of its own."""
    return retry_field(milliseconds) + b"\n"


def retry_field(milliseconds: int) -> bytes:
    """The ``retry`` line alone, to open the next event's block.

    Inside an event's block no parser dispatches an extra empty event for it
    (httpx-sse does for a ``retry``-only block; browsers do not).
    """
    if milliseconds < 0:
        raise ValueError("retry must not be negative")
    return f"retry: {milliseconds}\n".encode("ascii")


@dataclass(frozen=True)
class ServerSentEvent:
    """One parsed event."""

    event: str = "message"
    data: str = ""
    id: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass(frozen=True)
class Comment:
    """One parsed comment line (a heartbeat, usually)."""

    text: str


class SSEParser:
    """Incremental parser: feed bytes as they arrive, get events and comments out."""

    def __init__(self) -> None:
        self._buffer = ""
        self._decoder_tail = b""
        self.retry: int | None = None  # the last reconnection delay the server advertised
        self._reset()

    def _reset(self) -> None:
        self._event: str | None = None
        self._data: list[str] = []
        self._id: str | None = None
        self._has_data = False

    def feed(self, chunk: bytes) -> list[ServerSentEvent | Comment]:
        raw = self._decoder_tail + chunk
        try:
            text = raw.decode("utf-8")
            self._decoder_tail = b""
        except UnicodeDecodeError as exc:
            if exc.start < len(raw) - 3:
                raise
            text = raw[: exc.start].decode("utf-8")
            self._decoder_tail = raw[exc.start :]
        self._buffer += text
        out: list[ServerSentEvent | Comment] = []
        while True:
            match = _LINE_BREAK.search(self._buffer)
            # A lone trailing CR may be the first half of CRLF: wait for more.
            if match is None or (match.group() == "\r" and match.end() == len(self._buffer)):
                break
            line, self._buffer = self._buffer[: match.start()], self._buffer[match.end() :]
            item = self._line(line)
            if item is not None:
                out.append(item)
        return out

    def _line(self, line: str) -> ServerSentEvent | Comment | None:
        if line == "":
            # As browsers do: a block without data lines dispatches nothing.
            event = None
            if self._has_data:
                event = ServerSentEvent(event=self._event or "message", data="\n".join(self._data), id=self._id)
            self._reset()
            return event
        if line.startswith(":"):
            return Comment(line[1:].removeprefix(" "))
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._has_data = True
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry = int(value)
        return None


def parse_stream(chunks: Iterable[bytes]) -> Iterator[ServerSentEvent | Comment]:
    """Parse a whole stream of byte chunks."""
    parser = SSEParser()
    for chunk in chunks:
        yield from parser.feed(chunk)
