"""``uncut.answers``: a run's events as one whole answer, and a failed one's status."""

from __future__ import annotations

from typing import Any

import pytest

from uncut.answers import Answer, failure_status
from uncut.eventlog import Event
from uncut.producer import TOO_LARGE


def fed(*events: tuple[str, dict[str, Any]]) -> Answer:
    answer = Answer()
    for seq, (kind, data) in enumerate(events):
        assert answer.frame(Event(seq, kind, data)) == b""
    return answer


def test_text_finish_reason_and_usage() -> None:
    answer = fed(
        ("start", {}),
        ("token", {"text": "Hel"}),
        ("token", {"text": "lo"}),
        ("end", {"finish_reason": "length", "usage": {"output_tokens": 2}}),
    )
    assert answer.completed and answer.text == "Hello" and answer.finish_reason == "length"
    assert answer.usage == {"output_tokens": 2} and answer.tool_calls() == []


def test_interleaved_parallel_calls_keep_their_fragments_as_sent() -> None:
    answer = fed(
        ("tool_call", {"id": "a", "name": "f", "index": 0}),
        ("tool_call", {"id": "b", "name": "g", "index": 1}),
        ("tool_call_delta", {"id": "a", "index": 0, "args": '{"x":'}),
        ("tool_call_delta", {"id": "b", "index": 1, "args": '{"y":'}),
        ("tool_call_delta", {"id": "a", "index": 0, "args": " 1}"}),
        ("tool_call_delta", {"id": "b", "index": 1, "args": " 2}"}),
        ("tool_call_end", {"id": "a", "name": "f", "args": {"x": 1}}),
        ("tool_call_end", {"id": "b", "name": "g", "args": {"y": 2}}),
        ("end", {"finish_reason": "tool_calls"}),
    )
    assert answer.tool_calls() == [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}},
        {"id": "b", "type": "function", "function": {"name": "g", "arguments": '{"y": 2}'}},
    ]


def test_calls_without_ids_and_calls_that_arrived_whole() -> None:
    answer = fed(
        ("tool_call", {"id": None, "name": "f", "index": 0}),
        ("tool_call_delta", {"id": None, "index": 0, "args": "{}"}),
        ("tool_call_end", {"id": None, "name": "f", "args": {}}),
        ("tool_call_end", {"id": "w", "name": "whole", "args": None, "args_text": "{bad", "error": "not JSON"}),
        ("end", {}),
    )
    assert [(c["id"], c["function"]["arguments"]) for c in answer.tool_calls()] == [(None, "{}"), ("w", "{bad")]
    assert answer.finish_reason == "stop"


def test_a_failure_and_a_client_that_left() -> None:
    failed = fed(("token", {"text": "x"}), ("error", TOO_LARGE))
    assert not failed.completed
    status, body, retryable = failed.error_reply(openai_shape=True)
    assert (status, body["error"]["type"], body["error"]["code"], body["error"]["param"], retryable) == (
        422,
        "too_large",
        "too_large",
        None,
        False,
    )
    status, body, _ = fed(("token", {"text": "x"})).error_reply(openai_shape=False)
    assert status == 499 and body["error"]["type"] == "client_disconnected" and "retryable" in body["error"]


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("timeout", 504),
        ("too_large", 422),
        ("rate_limited", 429),
        ("upstream_timeout", 504),
        ("upstream_rejected", 502),
        ("upstream_unavailable", 502),
        ("server_shutdown", 503),
        ("producer_lost", 503),
        ("cancelled", 499),
        ("server_error", 500),
    ],
)
def test_failure_statuses(kind: str, status: int) -> None:
    assert failure_status(kind) == status
