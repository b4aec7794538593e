"""The rich event model: what chat models, chains and graphs stream, as wire events.

Real LangChain message objects, as providers' integrations build them:
OpenAI-style tool-call fragments matched by index, reasoning in each
provider's shape, whole messages from models that do not stream, and
LangGraph's ``(mode, payload)`` items.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.tool import tool_call_chunk

from uncut.events import StreamEvents, jsonable, parse_arguments
from uncut.graphs import GraphEvents


def run(items: list[Any], translator: type[StreamEvents] = StreamEvents) -> tuple[list[tuple[str, dict[str, Any]]], StreamEvents]:
    emitted: list[tuple[str, dict[str, Any]]] = []
    events = translator(lambda kind, data: emitted.append((kind, data)))
    for item in items:
        events.feed(item)
    events.close()
    return emitted, events


def chunk(content: Any = "", *, calls: list[dict[str, Any]] | None = None, finish: str | None = None, **kwargs: Any) -> AIMessageChunk:
    return AIMessageChunk(
        content=content,
        tool_call_chunks=[tool_call_chunk(**call) for call in calls or []],
        response_metadata={"finish_reason": finish} if finish else {},
        **kwargs,
    )


def test_text_chunks_become_tokens_and_empty_ones_nothing() -> None:
    emitted, events = run([chunk("Hel"), chunk(""), chunk("lo"), chunk("", finish="stop")])
    assert emitted == [("token", {"text": "Hel"}), ("token", {"text": "lo"})]
    assert events.finish_reason == "stop"


@pytest.mark.parametrize(
    "content, kwargs",
    [
        ([{"type": "reasoning", "reasoning": "Let me think."}, {"type": "text", "text": "Yes."}], {}),  # LangChain's standard blocks
        ([{"type": "thinking", "thinking": "Let me think."}, {"type": "text", "text": "Yes."}], {}),  # Anthropic
        ([{"type": "reasoning", "summary": [{"type": "summary_text", "text": "Let me think."}]}, "Yes."], {}),  # OpenAI Responses
        ("Yes.", {"additional_kwargs": {"reasoning_content": "Let me think."}}),  # DeepSeek-style providers
    ],
    ids=["standard", "anthropic-thinking", "responses-summary", "reasoning_content"],
)
def test_reasoning_in_each_providers_shape_comes_before_the_text(content: Any, kwargs: dict[str, Any]) -> None:
    emitted, _ = run([chunk(content, **kwargs)])
    assert emitted == [("reasoning", {"text": "Let me think."}), ("token", {"text": "Yes."})]


def test_a_streamed_tool_call_begins_sends_fragments_and_ends_parsed() -> None:
    emitted, events = run(
        [
            chunk(calls=[{"index": 0, "id": "call_1", "name": "get_weather", "args": ""}]),
            chunk(calls=[{"index": 0, "args": '{"city": '}]),
            chunk(calls=[{"index": 0, "args": '"Paris"}'}]),
            chunk(finish="tool_calls"),
        ]
    )
    assert emitted == [
        ("tool_call", {"id": "call_1", "name": "get_weather", "index": 0}),
        ("tool_call_delta", {"id": "call_1", "index": 0, "args": '{"city": '}),
        ("tool_call_delta", {"id": "call_1", "index": 0, "args": '"Paris"}'}),
        ("tool_call_end", {"id": "call_1", "name": "get_weather", "args": {"city": "Paris"}}),
    ]
    assert events.finish_reason == "tool_calls"
    assert events.tool_calls == [{"id": "call_1", "name": "get_weather", "args": {"city": "Paris"}}]


def test_parallel_calls_interleaved_by_index_keep_their_own_ids() -> None:
    emitted, events = run(
        [
            chunk(calls=[{"index": 0, "id": "call_a", "name": "add", "args": '{"x": 1'}]),
            chunk(calls=[{"index": 1, "id": "call_b", "name": "mul", "args": '{"x": 2'}]),
            chunk(calls=[{"index": 0, "args": ', "y": 3}'}]),
            chunk(calls=[{"index": 1, "args": ', "y": 4}'}]),
            chunk("", chunk_position="last"),
        ]
    )
    deltas = [(data["id"], data["args"]) for kind, data in emitted if kind == "tool_call_delta"]
    assert deltas == [("call_a", '{"x": 1'), ("call_b", '{"x": 2'), ("call_a", ', "y": 3}'), ("call_b", ', "y": 4}')]
    assert events.tool_calls == [
        {"id": "call_a", "name": "add", "args": {"x": 1, "y": 3}},
        {"id": "call_b", "name": "mul", "args": {"x": 2, "y": 4}},
    ]


@pytest.mark.parametrize(
    "args_text, error",
    [('{"city": "Par', "the arguments are not valid JSON"), ("[1, 2]", "the arguments are not a JSON object")],
)
def test_arguments_that_are_not_a_json_object_end_with_null_args_text_and_error(args_text: str, error: str) -> None:
    emitted, _ = run([chunk(calls=[{"index": 0, "id": "call_1", "name": "f", "args": args_text}])])  # ends when the stream does
    assert emitted[-1] == ("tool_call_end", {"id": "call_1", "name": "f", "args": None, "args_text": args_text, "error": error})


def test_a_whole_message_from_a_model_that_did_not_stream() -> None:
    message = AIMessage(content="Checking.", tool_calls=[{"id": "call_1", "name": "lookup", "args": {"q": "x"}}])
    emitted, _ = run([message])
    assert emitted == [
        ("token", {"text": "Checking."}),
        ("tool_call", {"id": "call_1", "name": "lookup", "index": 0}),
        ("tool_call_delta", {"id": "call_1", "index": 0, "args": '{"q": "x"}'}),
        ("tool_call_end", {"id": "call_1", "name": "lookup", "args": {"q": "x"}}),
    ]


def test_tool_results_are_events_and_input_messages_are_never_echoed() -> None:
    emitted, _ = run(
        [
            HumanMessage("what is the weather?"),
            SystemMessage("be brief"),
            ToolMessage("sunny", tool_call_id="call_1", name="get_weather"),
            ToolMessage("no such city", tool_call_id="call_2", name="get_weather", status="error"),
        ]
    )
    assert emitted == [
        ("tool_result", {"tool_call_id": "call_1", "name": "get_weather", "content": "sunny", "status": "success"}),
        ("tool_result", {"tool_call_id": "call_2", "name": "get_weather", "content": "no such city", "status": "error"}),
    ]


def test_strings_and_dicts_from_chains_still_become_tokens() -> None:
    emitted, _ = run(["a", {"answer": "b"}, {"output": {"text": "c"}}, {"unrelated": 1}, None, 42])
    assert [data["text"] for _, data in emitted] == ["a", "b", "c"]


def test_usage_of_several_model_calls_is_summed() -> None:
    usage = {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}
    _, events = run([chunk("a", usage_metadata=usage), chunk("b", usage_metadata=usage)])
    assert events.usage is not None and events.usage["total_tokens"] == 14


def test_a_graphs_items_become_messages_steps_and_custom_events() -> None:
    ai = chunk(calls=[{"index": 0, "id": "call_1", "name": "lookup", "args": '{"q": "x"}'}])
    emitted, events = run(
        [
            ("messages", (ai, {"langgraph_node": "model"})),
            ("updates", {"model": {"messages": [AIMessage("")]}}),
            ("custom", {"progress": 0.5}),
            ("custom", "plain value"),
            ("messages", (ToolMessage("found", tool_call_id="call_1", name="lookup"), {"langgraph_node": "tools"})),
            ("updates", {"tools": None}),
            ("messages", (chunk("Done."), {"langgraph_node": "model"})),
            ("updates", {"model": {}}),
            "not a graph item",
        ],
        GraphEvents,
    )
    assert [kind for kind, _ in emitted] == [
        "tool_call",
        "tool_call_delta",
        "tool_call_end",
        "step",
        "custom",
        "custom",
        "tool_result",
        "step",
        "token",
        "step",
    ]
    assert [data for kind, data in emitted if kind == "step"] == [
        {"node": "model", "step": 1},
        {"node": "tools", "step": 2},
        {"node": "model", "step": 3},
    ]
    assert [data for kind, data in emitted if kind == "custom"] == [{"progress": 0.5}, {"data": "plain value"}]
    assert isinstance(events, GraphEvents) and not events.interrupted


def test_helpers_make_anything_json_and_parse_arguments() -> None:
    assert jsonable({"when": object}) == {"when": str(object)}
    assert parse_arguments("") == ({}, None)
    assert parse_arguments('{"a": 1}') == ({"a": 1}, None)
