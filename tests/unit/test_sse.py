"""SSE framing is byte-exact, and the parser reads back what the framer writes."""

from __future__ import annotations

import pytest

from uncut import sse


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"data": "hello"}, b"data: hello\n\n"),
        ({"data": "hello", "event": "token"}, b"event: token\ndata: hello\n\n"),
        ({"data": "hello", "event": "token", "id": "s_1:3"}, b"id: s_1:3\nevent: token\ndata: hello\n\n"),
        ({"data": "two\nlines"}, b"data: two\ndata: lines\n\n"),
        ({"data": "crlf\r\nand\rcr"}, b"data: crlf\ndata: and\ndata: cr\n\n"),
        ({"data": ""}, b"data: \n\n"),
        ({"data": "trailing\n"}, b"data: trailing\ndata: \n\n"),
        ({"data": "caf\u00e9 \u2603 \U0001f600"}, "data: caf\u00e9 \u2603 \U0001f600\n\n".encode()),
        ({"data": ": not a comment"}, b"data: : not a comment\n\n"),
    ],
)
def test_format_event_is_byte_exact(kwargs: dict, expected: bytes) -> None:
    assert sse.format_event(**kwargs) == expected


def test_json_event_is_one_line_even_with_newlines_in_values() -> None:
    frame = sse.format_json_event({"text": "a\nb", "n": 1}, event="token", id="s:1")
    assert frame == b'id: s:1\nevent: token\ndata: {"text":"a\\nb","n":1}\n\n'


@pytest.mark.parametrize("field", ["id", "event"])
def test_line_breaks_in_id_or_event_are_refused(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        sse.format_event("x", **{field: "a\nb"})


def test_comment_retry_and_heartbeat() -> None:
    assert sse.format_comment("ping") == b": ping\n\n"
    assert sse.format_comment("a\nb") == b": a\n: b\n\n"
    assert sse.format_retry(3000) == b"retry: 3000\n\n" and sse.retry_field(5) == b"retry: 5\n"
    assert sse.HEARTBEAT == b": ping\n\n" and sse.HEARTBEAT.strip()


def test_empty_comment_is_refused_because_servers_drop_empty_writes() -> None:
    with pytest.raises(ValueError):
        sse.format_comment("")


def test_parser_round_trips_and_handles_any_chunking() -> None:
    stream = (
        sse.format_retry(1500)
        + sse.format_json_event({"stream_id": "s"}, event="start", id="s:0")
        + sse.HEARTBEAT
        + sse.format_event("multi\nline \u00e9\U0001f600", event="token", id="s:1")
        + sse.format_json_event({"finish_reason": "stop"}, event="end", id="s:2")
    )
    whole = list(sse.parse_stream([stream]))
    # One byte at a time splits multi-byte characters and line endings: same result.
    bytewise = list(sse.parse_stream(stream[i : i + 1] for i in range(len(stream))))
    assert whole == bytewise
    events = [item for item in whole if isinstance(item, sse.ServerSentEvent)]
    assert [e.event for e in events] == ["start", "token", "end"]
    assert [e.id for e in events] == ["s:0", "s:1", "s:2"]
    assert events[1].data == "multi\nline \u00e9\U0001f600"
    assert [c.text for c in whole if isinstance(c, sse.Comment)] == ["ping"]


def test_parser_accepts_crlf_and_cr_line_endings_and_records_retry() -> None:
    parser = sse.SSEParser()
    items = parser.feed(b"retry: 42\r\n\r\nevent: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\r")
    # A trailing CR may be half of a CRLF, so the parser waits for the next byte.
    items += parser.feed(b": next\n")
    events = [e for e in items if isinstance(e, sse.ServerSentEvent)]
    assert [(e.event, e.data) for e in events] == [("a", "1"), ("b", "2")]
    assert parser.retry == 42


def test_parser_waits_for_the_blank_line() -> None:
    parser = sse.SSEParser()
    assert parser.feed(b"event: token\ndata: x\n") == []
    assert [e.data for e in parser.feed(b"\n")] == ["x"]
