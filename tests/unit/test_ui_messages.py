"""The AI SDK's UI message stream, byte for byte, from our events (uncut.ui_messages)."""

from __future__ import annotations

import json
from typing import Any

from uncut.eventlog import Event
from uncut.ui_messages import DONE, RESTARTING, UIMessageFormat


def frames(*events: tuple[str, dict[str, Any]]) -> list[dict[str, Any] | str]:
    """The chunks a run of events becomes, decoded; ``[DONE]`` as the string."""
    ui = UIMessageFormat("s_1")
    raw = b"".join(ui.frame(Event(seq, kind, data)) for seq, (kind, data) in enumerate(events))
    out: list[dict[str, Any] | str] = []
    for block in raw.decode().split("\n\n")[:-1]:
        assert block.startswith("data: ") and "\n" not in block
        payload = block[len("data: ") :]
        out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


START = ("start", {"stream_id": "s_1"})
END = ("end", {"finish_reason": "stop", "tokens": 2, "usage": {}})


def test_text_is_one_part_between_start_and_finish_and_the_frames_are_exact() -> None:
    ui = UIMessageFormat("s_1")
    raw = b"".join(
        ui.frame(Event(i, k, d)) for i, (k, d) in enumerate([START, ("token", {"text": "Hi"}), ("token", {"text": " there"}), END])
    )
    assert (
        raw
        == (
            b'data: {"type":"start","messageId":"msg_s_1"}\n\n'
            b'data: {"type":"start-step"}\n\n'
            b'data: {"type":"text-start","id":"t1"}\n\n'
            b'data: {"type":"text-delta","id":"t1","delta":"Hi"}\n\n'
            b'data: {"type":"text-delta","id":"t1","delta":" there"}\n\n'
            b'data: {"type":"text-end","id":"t1"}\n\n'
            b'data: {"type":"finish-step"}\n\n'
            b'data: {"type":"finish","finishReason":"stop"}\n\n'
        )
        + DONE
    )


def test_reasoning_then_text_are_separate_parts_each_closed_before_the_next() -> None:
    chunks = frames(START, ("reasoning", {"text": "think"}), ("token", {"text": "say"}), ("reasoning", {"text": "more"}), END)
    kinds = [c["type"] if isinstance(c, dict) else c for c in chunks]
    assert kinds == [
        "start",
        "start-step",
        "reasoning-start",
        "reasoning-delta",
        "reasoning-end",
        "text-start",
        "text-delta",
        "text-end",
        "reasoning-start",
        "reasoning-delta",
        "reasoning-end",
        "finish-step",
        "finish",
        "[DONE]",
    ]
    ids = [c.get("id") for c in chunks if isinstance(c, dict) and c["type"].endswith("-start") and c["type"] != "start-step"]
    assert len(set(ids)) == 3  # a fresh id per part


def test_parallel_tool_calls_keep_their_ids_and_results_reach_the_right_call() -> None:
    chunks = frames(
        START,
        ("tool_call", {"id": "a", "name": "weather", "index": 0}),
        ("tool_call", {"id": "b", "name": "time", "index": 1}),
        ("tool_call_delta", {"id": "a", "index": 0, "args": '{"city":'}),
        ("tool_call_delta", {"id": "b", "index": 1, "args": "{}"}),
        ("tool_call_delta", {"id": "a", "index": 0, "args": '"Paris"}'}),
        ("tool_call_end", {"id": "a", "name": "weather", "args": {"city": "Paris"}}),
        ("tool_call_end", {"id": "b", "name": "time", "args": {}}),
        ("step", {"node": "model", "step": 1}),
        ("tool_result", {"tool_call_id": "b", "name": "time", "content": "noon", "status": "success"}),
        ("tool_result", {"tool_call_id": "a", "name": "weather", "content": "boom", "status": "error"}),
        ("step", {"node": "tools", "step": 2}),
        ("token", {"text": "done"}),
        END,
    )
    dicts = [c for c in chunks if isinstance(c, dict)]
    assert {"type": "tool-input-start", "toolCallId": "a", "toolName": "weather"} in dicts
    deltas = [c for c in dicts if c["type"] == "tool-input-delta"]
    assert [(c["toolCallId"], c["inputTextDelta"]) for c in deltas] == [("a", '{"city":'), ("b", "{}"), ("a", '"Paris"}')]
    assert {"type": "tool-input-available", "toolCallId": "a", "toolName": "weather", "input": {"city": "Paris"}} in dicts
    assert {"type": "tool-output-available", "toolCallId": "b", "output": "noon"} in dicts
    assert {"type": "tool-output-error", "toolCallId": "a", "errorText": "boom"} in dicts
    # Two model rounds, two steps: the second opens only when its content comes.
    assert [c["type"] for c in dicts].count("start-step") == 2
    assert dicts[-1] == {"type": "finish", "finishReason": "stop"}


def test_invalid_arguments_become_a_tool_input_error_and_a_call_without_id_gets_one() -> None:
    chunks = frames(
        START,
        ("tool_call", {"id": None, "name": "f", "index": 0}),
        ("tool_call_delta", {"id": None, "index": 0, "args": "{bad"}),
        ("tool_call_end", {"id": None, "name": "f", "args": None, "args_text": "{bad", "error": "the arguments are not valid JSON"}),
        ("end", {"finish_reason": "tool_calls", "tokens": 0, "usage": {}, "tool_calls": []}),
    )
    dicts = [c for c in chunks if isinstance(c, dict)]
    start = next(c for c in dicts if c["type"] == "tool-input-start")
    assert isinstance(start["toolCallId"], str) and start["toolCallId"]
    error = next(c for c in dicts if c["type"] == "tool-input-error")
    assert error["input"] == "{bad" and "not valid JSON" in error["errorText"]
    assert dicts[-1] == {"type": "finish", "finishReason": "tool-calls"}


def test_a_result_for_a_call_the_client_never_saw_announces_the_call_first() -> None:
    chunks = frames(START, ("tool_result", {"tool_call_id": "x", "name": "t", "content": {"a": 1}, "status": "success"}), END)
    dicts = [c for c in chunks if isinstance(c, dict)]
    at = [c["type"] for c in dicts].index("tool-output-available")
    assert dicts[at - 1] == {"type": "tool-input-available", "toolCallId": "x", "toolName": "t", "input": None}
    assert dicts[at]["output"] == {"a": 1}


def test_failures_are_an_error_chunk_with_the_safe_message_and_a_cancel_is_an_abort() -> None:
    failed = frames(
        START,
        ("token", {"text": "a"}),
        ("error", {"error": {"type": "upstream_error", "message": "The model provider failed while answering.", "retryable": True}}),
    )
    assert failed[-2:] == [{"type": "error", "errorText": "The model provider failed while answering."}, "[DONE]"]
    assert {"type": "text-end", "id": "t1"} in failed  # parts are closed first
    cancelled = frames(START, ("error", {"error": {"type": "cancelled", "message": "The stream was cancelled.", "retryable": False}}))
    assert cancelled[-2:] == [{"type": "abort", "reason": "The stream was cancelled."}, "[DONE]"]


def test_graph_writes_are_data_parts_and_finish_reasons_use_the_sdk_words() -> None:
    chunks = frames(START, ("custom", {"progress": 50}), ("end", {"finish_reason": "length", "tokens": 0, "usage": {}}))
    assert {"type": "data-custom", "data": {"progress": 50}} in chunks
    assert {"type": "finish", "finishReason": "length"} in chunks
    odd = frames(START, ("end", {"finish_reason": "interrupt", "tokens": 0, "usage": {}}))
    assert {"type": "finish", "finishReason": "other"} in odd


def test_a_reader_moved_off_a_draining_worker_is_told_to_resume() -> None:
    moved = UIMessageFormat.moved()
    assert moved == b'data: {"type":"error","errorText":"' + RESTARTING.encode() + b'"}\n\n' + DONE


def test_a_replay_rebuilds_the_same_chunks() -> None:
    events = [START, ("reasoning", {"text": "r"}), ("token", {"text": "x"}), ("tool_call", {"id": "c", "name": "f", "index": 0}), END]
    assert frames(*events) == frames(*events)


def test_the_token_fast_path_frames_any_text_as_the_general_path_does() -> None:
    texts = ['a "quoted"\nline', "tab\there \\ back", "emoji 🙂 and é", "\u2028 separator", "</script>"]
    chunks_out = frames(START, ("token", {"text": "first"}), *[("token", {"text": t}) for t in texts], END)
    deltas = [c["delta"] for c in chunks_out if isinstance(c, dict) and c["type"] == "text-delta"]
    assert deltas == ["first", *texts]


def approval(interrupt_id: str, *actions: tuple[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    value = {
        "action_requests": [{"name": n, "args": a, "description": ""} for n, a in actions],
        "review_configs": [{"action_name": n, "allowed_decisions": ["approve", "reject"]} for n, _ in actions],
    }
    return ("interrupt", {"interrupts": [{"id": interrupt_id, "value": value}]})


def ended(call_id: str, name: str, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return ("tool_call_end", {"id": call_id, "name": name, "args": args})


INTERRUPTED = ("end", {"finish_reason": "interrupt", "tokens": 0, "usage": {}})


def test_each_action_request_asks_on_the_call_with_its_name_and_arguments_in_order() -> None:
    chunks = frames(
        START,
        ended("c1", "send_email", {"to": "a"}),
        ended("c2", "look_up", {"q": "x"}),
        ended("c3", "send_email", {"to": "b"}),
        ("step", {"node": "model", "step": 1}),
        approval("i9", ("send_email", {"to": "b"}), ("send_email", {"to": "a"})),
        INTERRUPTED,
    )
    asked = [c for c in chunks if isinstance(c, dict) and c["type"] == "tool-approval-request"]
    assert asked == [
        {"type": "tool-approval-request", "approvalId": "i9:0", "toolCallId": "c3"},
        {"type": "tool-approval-request", "approvalId": "i9:1", "toolCallId": "c1"},
    ]
    assert chunks[-2:] == [{"type": "finish", "finishReason": "tool-calls"}, "[DONE]"]
    assert not [c for c in chunks if isinstance(c, dict) and c["type"] == "data-interrupt"]


def test_an_interrupt_that_is_no_approval_of_a_call_shown_here_is_a_data_part() -> None:
    own = ("interrupt", {"interrupts": [{"id": "i1", "value": {"question": "which city?"}}]})
    unknown_call = approval("i2", ("send_email", {"to": "a"}))  # no call of that name in this stream
    for event in (own, unknown_call):
        chunks = frames(START, event, INTERRUPTED)
        kinds = [c["type"] for c in chunks if isinstance(c, dict)]
        assert "data-interrupt" in kinds and "tool-approval-request" not in kinds
        assert chunks[-2] == {"type": "finish", "finishReason": "other"}


def test_a_run_that_continues_a_message_keeps_its_id_and_calls_and_denies_what_was_denied() -> None:
    start = (
        "start",
        {"stream_id": "s_1", "ui_message_id": "msg_first", "ui_tool_call_ids": ["c1", "c2"], "ui_denied_tool_call_ids": ["c2"]},
    )
    chunks = frames(
        start,
        ("tool_result", {"tool_call_id": "c1", "name": "send_email", "content": "queued", "status": "success"}),
        ("tool_result", {"tool_call_id": "c2", "name": "send_email", "content": "User rejected it", "status": "error"}),
        ("token", {"text": "Done."}),
        END,
    )
    dicts = [c for c in chunks if isinstance(c, dict)]
    assert dicts[0] == {"type": "start", "messageId": "msg_first"}
    assert {"type": "tool-output-available", "toolCallId": "c1", "output": "queued"} in dicts
    assert {"type": "tool-output-denied", "toolCallId": "c2"} in dicts
    assert not [c for c in dicts if c["type"].startswith("tool-input")]  # the message has these calls already
