"""OpenAI's Responses API events from ours (uncut.openai_responses), checked by the openai SDK's own code.

Every event is validated strictly against the SDK's pydantic models, and the
whole sequence goes through ``ResponseStreamState``: the accumulator behind
``client.responses.stream()``, which raises on any lifecycle slip. A
negative control shows it does raise on a stream missing one event.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai._models import construct_type, validate_type
from openai._types import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent

from uncut.eventlog import Event
from uncut.openai_responses import ResponsesFormat

ECHO = {"model": "m", "tools": [{"type": "function", "name": "weather", "parameters": {"type": "object", "properties": {}}}]}
START = ("start", {"stream_id": "s_1"})


def events_of(*ours: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    fmt = ResponsesFormat("s_1", ECHO, created_at=1)
    raw = b"".join(fmt.frame(Event(i, kind, data)) for i, (kind, data) in enumerate(ours)).decode()
    out = []
    for block in raw.split("\n\n")[:-1]:
        head, data = block.split("\n")
        event = json.loads(data.removeprefix("data: "))
        assert head == f"event: {event['type']}"
        out.append(event)
    return out


def accumulate(events: list[dict[str, Any]]) -> ResponseStreamState:
    state = ResponseStreamState(input_tools=omit, text_format=omit)
    for event in events:
        validate_type(type_=ResponseStreamEvent, value=event)  # strict: every field the SDK declares
        state.handle_event(construct_type(type_=ResponseStreamEvent, value=event))
    return state


def final(state: ResponseStreamState) -> Any:
    response = state._completed_response
    assert response is not None, "no response.completed"
    return response


def test_text_lifecycle_and_sequence_numbers() -> None:
    events = events_of(
        START,
        ("token", {"text": "Hel"}),
        ("token", {"text": "lo"}),
        ("end", {"finish_reason": "stop", "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}}),
    )
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["response"]["output"] == []
    response = final(accumulate(events))
    assert response.output_text == "Hello"
    assert response.usage.input_tokens == 3 and response.usage.output_tokens == 2
    Response.model_validate(events[-1]["response"])


def test_reasoning_then_text_then_two_interleaved_calls() -> None:
    events = events_of(
        START,
        ("reasoning", {"text": "Think"}),
        ("reasoning", {"text": "ing."}),
        ("token", {"text": "Checking."}),
        ("tool_call", {"id": "call_a", "name": "weather", "index": 0}),
        ("tool_call", {"id": "call_b", "name": "weather", "index": 1}),
        ("tool_call_delta", {"id": "call_a", "index": 0, "args": '{"city":'}),
        ("tool_call_delta", {"id": "call_b", "index": 1, "args": '{"city":"Rome"}'}),
        ("tool_call_delta", {"id": "call_a", "index": 0, "args": '"Paris"}'}),
        ("tool_call_end", {"id": "call_a", "name": "weather", "args": {"city": "Paris"}}),
        ("tool_call_end", {"id": "call_b", "name": "weather", "args": {"city": "Rome"}}),
        ("end", {"finish_reason": "tool_calls", "usage": {}, "tool_calls": []}),
    )
    response = final(accumulate(events))
    kinds = [item.type for item in response.output]
    assert kinds == ["reasoning", "message", "function_call", "function_call"]
    assert response.output[0].summary[0].text == "Thinking."
    calls = {item.call_id: item.arguments for item in response.output if item.type == "function_call"}
    assert calls == {"call_a": '{"city":"Paris"}', "call_b": '{"city":"Rome"}'}
    assert response.output_text == "Checking."


def test_a_failure_is_response_failed_with_a_safe_message_and_the_token_limit_is_incomplete() -> None:
    failed = events_of(
        START,
        ("token", {"text": "a"}),
        ("error", {"error": {"type": "rate_limited", "message": "The model provider is rate limiting requests.", "retryable": True}}),
    )
    assert failed[-1]["type"] == "response.failed"
    assert failed[-1]["response"]["error"]["code"] == "rate_limit_exceeded"
    assert failed[-1]["response"]["output"][0]["status"] == "incomplete"
    accumulate(failed)  # a valid lifecycle, just not completed
    cut = events_of(START, ("token", {"text": "a"}), ("end", {"finish_reason": "length", "usage": {}}))
    assert cut[-1]["type"] == "response.incomplete"
    assert cut[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    accumulate(cut)


def test_negative_control_the_sdk_raises_when_an_output_item_is_not_announced() -> None:
    events = events_of(START, ("token", {"text": "Hi"}), ("end", {"finish_reason": "stop", "usage": {}}))
    broken = [e for e in events if e["type"] != "response.output_item.added"]
    with pytest.raises(RuntimeError, match="before receiving its output item"):
        accumulate(broken)


def test_non_streaming_reply_for_a_failure_says_the_status_and_whether_to_retry() -> None:
    fmt = ResponsesFormat("s_1", ECHO)
    for i, (kind, data) in enumerate(
        [
            START,
            ("error", {"error": {"type": "upstream_timeout", "message": "The model provider did not answer in time.", "retryable": True}}),
        ]
    ):
        fmt.frame(Event(i, kind, data))
    status, body, retryable = fmt.error_reply()
    assert (status, retryable) == (504, True)
    assert body["error"]["type"] == "upstream_timeout" and body["error"]["param"] is None


def test_the_token_fast_path_frames_any_text_as_the_general_path_does() -> None:
    texts = ['a "quoted"\nline', "tab\there \\ back", "emoji 🙂 and é", "\u2028 separator"]
    events = events_of(
        START, ("token", {"text": "first"}), *[("token", {"text": t}) for t in texts], ("end", {"finish_reason": "stop", "usage": {}})
    )
    assert [e["delta"] for e in events if e["type"] == "response.output_text.delta"] == ["first", *texts]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert final(accumulate(events)).output_text == "first" + "".join(texts)
