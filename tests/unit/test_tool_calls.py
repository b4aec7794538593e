"""Tool calls in the scripted model (the no-key default) and on the OpenAI wire.

The scripted model streams calls the way OpenAI does, chooses tools by the
words of their names, fits arguments to their schemas, and answers from
tool results. The /v1 framer turns our events into OpenAI's exact delta
shape, and sends interleaved calls one after the other, as the openai
SDK's strict accumulator needs.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool

from uncut.eventlog import Event
from uncut.openai_chunks import DONE, ChunkFormat
from uncut.scripted import ScriptedChatModel
from uncut.tool_script import fit_arguments, plan_tool_calls


@tool
def get_weather(city: str, unit: str = "celsius") -> str:
    """The weather in a city."""
    return f"sunny in {city}"


@tool
def get_time(timezone: str) -> str:
    """The time in a timezone."""
    return "12:00"


def streamed(model: Any, prompt: Any) -> tuple[list[AIMessageChunk], AIMessageChunk]:
    chunks = list(model.stream(prompt))
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole = whole + chunk
    return chunks, whole


def test_a_model_bound_to_tools_calls_the_one_the_prompt_names_with_fitting_arguments() -> None:
    model = ScriptedChatModel(ttft=0, interval=0).bind_tools([get_weather, get_time])
    chunks, whole = streamed(model, "What is the weather in Paris?")
    assert [c["name"] for c in whole.tool_calls] == ["get_weather"]
    assert set(whole.tool_calls[0]["args"]) == {"city"}  # the required property, from the prompt
    assert whole.response_metadata["finish_reason"] == "tool_calls"
    first = chunks[0].tool_call_chunks[0]
    assert first["id"] and first["name"] == "get_weather" and first["args"] == ""  # id and name first, as OpenAI
    assert sum(1 for c in chunks if c.tool_call_chunks and c.tool_call_chunks[0]["args"]) >= 2  # arguments in fragments


def test_parallel_calls_are_interleaved_by_index_and_parallel_false_makes_one() -> None:
    model = ScriptedChatModel(ttft=0, interval=0)
    chunks, whole = streamed(model.bind_tools([get_weather, get_time]), "weather and time in Paris")
    assert [c["name"] for c in whole.tool_calls] == ["get_weather", "get_time"]
    indexes = [c.tool_call_chunks[0]["index"] for c in chunks if c.tool_call_chunks and c.tool_call_chunks[0]["args"]]
    assert indexes[:2] == [0, 1]  # fragments alternate between the calls
    _, single = streamed(model.bind_tools([get_weather, get_time], parallel_tool_calls=False), "weather and time in Paris")
    assert len(single.tool_calls) == 1


def test_tool_choice_forces_a_tool_or_none_and_results_get_an_answer() -> None:
    model = ScriptedChatModel(ttft=0, interval=0)
    _, forced = streamed(model.bind_tools([get_weather, get_time], tool_choice="get_time"), "weather in Paris")
    assert [c["name"] for c in forced.tool_calls] == ["get_time"]
    _, none = streamed(model.bind_tools([get_weather], tool_choice="none"), "weather in Paris")
    assert none.tool_calls == [] and none.content
    call = forced.tool_calls[0]
    answer = model.bind_tools([get_time]).invoke(
        [HumanMessage("time?"), AIMessage("", tool_calls=[call]), ToolMessage("12:00", tool_call_id=call["id"], name="get_time")]
    )
    assert answer.tool_calls == [] and 'The get_time tool returned "12:00".' in answer.text


def test_arguments_fit_each_schema_type() -> None:
    schema = {
        "type": "object",
        "required": ["text", "count", "ratio", "flag", "choice", "tags", "nested", "either"],
        "properties": {
            "text": {"type": "string"},
            "count": {"type": "integer"},
            "ratio": {"type": "number"},
            "flag": {"type": "boolean"},
            "choice": {"enum": ["a", "b"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "nested": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
            "either": {"anyOf": [{"type": "null"}, {"type": "string"}]},
            "optional": {"type": "string"},
        },
    }
    args = fit_arguments(schema, "make 3 of them")
    assert args == {
        "text": "make 3 of them",
        "count": 3,
        "ratio": 3.0,
        "flag": True,
        "choice": "a",
        "tags": [],
        "nested": {"n": 3},
        "either": None,
    }


def test_plans_are_deterministic() -> None:
    tools = [{"type": "function", "function": {"name": "slow_lookup", "parameters": {"type": "object"}}}]
    assert plan_tool_calls("look it up slowly", tools, None, None, salt=1) == plan_tool_calls(
        "look it up slowly", tools, None, None, salt=1
    )
    assert plan_tool_calls("x", tools, None, None, salt=1)[0].id != plan_tool_calls("x", tools, None, None, salt=2)[0].id


# -- the OpenAI wire ------------------------------------------------------------------------


def frames(events: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    chunks = ChunkFormat("chatcmpl-x", "m", 1, include_usage=False)
    out = b"".join(chunks.frame(Event(seq, kind, data)) for seq, (kind, data) in enumerate(events))
    assert out.endswith(DONE)
    return [json.loads(line[6:]) for line in out.decode().split("\n\n") if line.startswith("data: {")]


def test_a_call_streams_in_openais_exact_delta_shape() -> None:
    chunks = frames(
        [
            ("start", {}),
            ("tool_call", {"id": "call_1", "name": "get_time", "index": 0}),
            ("tool_call_delta", {"id": "call_1", "index": 0, "args": '{"timezone":'}),
            ("tool_call_delta", {"id": "call_1", "index": 0, "args": ' "UTC"}'}),
            ("tool_call_end", {"id": "call_1", "name": "get_time", "args": {"timezone": "UTC"}}),
            ("end", {"finish_reason": "tool_calls"}),
        ]
    )
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": ""},
        {"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"timezone":'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": ' "UTC"}'}}]},
        {},
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_interleaved_calls_go_out_one_after_the_other() -> None:
    chunks = frames(
        [
            ("start", {}),
            ("tool_call", {"id": "a", "name": "f", "index": 0}),
            ("tool_call", {"id": "b", "name": "g", "index": 1}),
            ("tool_call_delta", {"id": "a", "index": 0, "args": '{"x":'}),
            ("tool_call_delta", {"id": "b", "index": 1, "args": '{"y":'}),
            ("tool_call_delta", {"id": "a", "index": 0, "args": " 1}"}),
            ("tool_call_delta", {"id": "b", "index": 1, "args": " 2}"}),
            ("tool_call_end", {"id": "a", "name": "f", "args": {"x": 1}}),
            ("tool_call_end", {"id": "b", "name": "g", "args": {"y": 2}}),
            ("end", {"finish_reason": "tool_calls"}),
        ]
    )
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if "tool_calls" in c["choices"][0]["delta"]]
    assert [(c["index"], c.get("id"), c["function"]["arguments"]) for c in calls] == [
        (0, "a", ""),
        (0, None, '{"x":'),
        (0, None, " 1}"),
        (1, "b", ""),
        (1, None, '{"y": 2}'),
    ]


@pytest.mark.parametrize("end_first", [True, False])
def test_a_held_call_goes_out_even_if_its_end_never_came(end_first: bool) -> None:
    events = [
        ("start", {}),
        ("tool_call", {"id": "a", "name": "f", "index": 0}),
        ("tool_call", {"id": "b", "name": "g", "index": 1}),
        ("tool_call_delta", {"id": "b", "index": 1, "args": "{}"}),
    ]
    if end_first:
        events.append(("tool_call_end", {"id": "b", "name": "g", "args": {}}))
    calls = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in frames([*events, ("end", {"finish_reason": "tool_calls"})])
        if "tool_calls" in c["choices"][0]["delta"]
    ]
    assert [(c["index"], c.get("id")) for c in calls] == [(0, "a"), (1, "b"), (1, None)]
