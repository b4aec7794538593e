"""OpenAI request validation, strict JSON bodies, the wire format and the stream limiter."""

from __future__ import annotations

import json
from typing import Any

import pytest

from uncut.admission import CLIENT_LIMIT, OVERLOADED, Refusal, StreamLimiter
from uncut.eventlog import Event
from uncut.openai_chunks import DONE, ChunkFormat, openai_usage
from webapp.chat_request import ChatLimits
from webapp.jsonbody import MAX_DEPTH, InvalidJSON, load_json
from webapp.openai_request import InvalidCompletionRequest, parse_completion_request

TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
ASKED = [{"role": "user", "content": "weather?"}, {"role": "assistant", "content": None, "tool_calls": [CALL]}]
ANSWER = {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}

LIMITS = ChatLimits(max_messages=10, max_message_chars=100)
USER = [{"role": "user", "content": "hi"}]


def parse(body: Any):
    return parse_completion_request(body, LIMITS, max_tokens=50)


def test_a_full_request_is_parsed() -> None:
    req = parse(
        {
            "model": "gpt-x",
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": 0.2,
            "top_p": 1,
            "max_completion_tokens": 20,
            "stop": "\n\n",
            "user": "ignored",
            "seed": 3,
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            ],
        }
    )
    assert req.model == "gpt-x" and req.stream and req.include_usage
    assert [(m.type, m.content) for m in req.messages] == [("system", "Be brief."), ("human", "ab")]
    assert req.params == {"temperature": 0.2, "top_p": 1.0, "max_tokens": 20, "stop": ["\n\n"]}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([], None),
        ({"messages": USER}, "model"),
        ({"model": "", "messages": USER}, "model"),
        ({"model": 5, "messages": USER}, "model"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": [USER[0]] * 11}, "messages"),
        ({"model": "m", "messages": ["hi"]}, "messages[0]"),
        ({"model": "m", "messages": [{"role": "function", "content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"role": None, "content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"role": "user", "content": ""}]}, "messages[0].content"),
        ({"model": "m", "messages": [{"role": "user", "content": None}]}, "messages[0].content"),
        ({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages[0].content"),
        ({"model": "m", "messages": [{"role": "user", "content": "x" * 101}]}, "messages[0].content"),
        ({"model": "m", "messages": USER, "stream": "yes"}, "stream"),
        ({"model": "m", "messages": USER, "stream_options": {"include_usage": 1}}, "stream_options"),
        ({"model": "m", "messages": USER, "temperature": 3}, "temperature"),
        ({"model": "m", "messages": USER, "temperature": True}, "temperature"),
        ({"model": "m", "messages": USER, "max_tokens": 0}, "max_tokens"),
        ({"model": "m", "messages": USER, "max_tokens": 51}, "max_tokens"),
        ({"model": "m", "messages": USER, "max_tokens": 2.5}, "max_tokens"),
        ({"model": "m", "messages": USER, "max_completion_tokens": -1}, "max_completion_tokens"),
        ({"model": "m", "messages": USER, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"model": "m", "messages": USER, "stop": [""]}, "stop"),
        ({"model": "m", "messages": USER, "n": 2}, "n"),
    ],
)
def test_bad_requests_name_the_parameter(body: Any, param: str | None) -> None:
    with pytest.raises(InvalidCompletionRequest) as caught:
        parse(body)
    assert caught.value.param == param


def test_tools_calls_and_results_are_parsed_into_langchain_messages() -> None:
    req = parse(
        {
            "model": "m",
            "tools": [TOOL],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": False,
            "messages": [*ASKED, ANSWER, {"role": "user", "content": "thanks"}],
        }
    )
    assert req.tools == [TOOL]
    assert req.tool_choice == {"type": "function", "function": {"name": "get_weather"}} and req.parallel_tool_calls is False
    assert [m.type for m in req.messages] == ["human", "ai", "tool", "human"]
    assert req.messages[1].tool_calls == [{"id": "call_1", "name": "get_weather", "args": {"city": "Paris"}, "type": "tool_call"}]
    assert (req.messages[2].tool_call_id, req.messages[2].name, req.messages[2].content) == ("call_1", "get_weather", "sunny")


def with_tools(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [*ASKED, ANSWER], "tools": [TOOL], **fields}


def call(**function: Any) -> dict[str, Any]:
    return {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}", **function}}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (with_tools(tools={}), "tools"),
        (with_tools(tools=[]), "tools"),
        (with_tools(tools=[TOOL] * 129), "tools"),
        (with_tools(tools=["get_weather"]), "tools[0]"),
        (with_tools(tools=[{"type": "code_interpreter"}]), "tools[0]"),
        (with_tools(tools=[{"type": "function", "function": {"name": "has space"}}]), "tools[0].function.name"),
        (with_tools(tools=[{"type": "function", "function": {"name": "x" * 65}}]), "tools[0].function.name"),
        (with_tools(tools=[{"type": "function", "function": {}}]), "tools[0].function.name"),
        (with_tools(tools=[TOOL, TOOL]), "tools[1].function.name"),
        (with_tools(tools=[{"type": "function", "function": {"name": "f", "description": 3}}]), "tools[0].function.description"),
        (with_tools(tools=[{"type": "function", "function": {"name": "f", "parameters": "{}"}}]), "tools[0].function.parameters"),
        (
            with_tools(tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}]),
            "tools[0].function.parameters",
        ),
        (with_tools(tools=[{"type": "function", "function": {"name": "f", "strict": "yes"}}]), "tools[0].function.strict"),
        (with_tools(tool_choice="always"), "tool_choice"),
        (with_tools(tool_choice={"type": "function", "function": {"name": "nope"}}), "tool_choice"),
        ({"model": "m", "messages": USER, "tool_choice": "auto"}, "tool_choice"),
        (with_tools(parallel_tool_calls="yes"), "parallel_tool_calls"),
        ({"model": "m", "messages": [ANSWER]}, "messages[0].tool_call_id"),
        ({"model": "m", "messages": [*ASKED, {**ANSWER, "tool_call_id": "call_2"}]}, "messages[2].tool_call_id"),
        ({"model": "m", "messages": [*ASKED, {**ANSWER, "tool_call_id": 7}]}, "messages[2].tool_call_id"),
        ({"model": "m", "messages": [*ASKED, ANSWER, ANSWER]}, "messages[3].tool_call_id"),
        ({"model": "m", "messages": [*ASKED, {**ANSWER, "content": {"x": 1}}]}, "messages[2].content"),
        ({"model": "m", "messages": ASKED}, "messages[1].tool_calls"),
        ({"model": "m", "messages": [*ASKED, {"role": "user", "content": "and?"}]}, "messages[1].tool_calls"),
        ({"model": "m", "messages": [USER[0], {"role": "assistant", "tool_calls": []}]}, "messages[1].tool_calls"),
        ({"model": "m", "messages": [USER[0], {"role": "assistant", "tool_calls": [{"id": "c"}]}]}, "messages[1].tool_calls[0]"),
        (
            {"model": "m", "messages": [USER[0], {"role": "assistant", "tool_calls": [call(arguments='{"city": ')]}]},
            "messages[1].tool_calls[0].function.arguments",
        ),
        (
            {"model": "m", "messages": [USER[0], {"role": "assistant", "tool_calls": [call(arguments="[1]")]}]},
            "messages[1].tool_calls[0].function.arguments",
        ),
        (
            {"model": "m", "messages": [USER[0], {"role": "assistant", "tool_calls": [call(arguments={"city": "x"})]}]},
            "messages[1].tool_calls[0].function.arguments",
        ),
        (
            {"model": "m", "messages": [USER[0], {"role": "assistant", "tool_calls": [call(name="bad name")]}]},
            "messages[1].tool_calls[0].function.name",
        ),
        (
            {"model": "m", "messages": [USER[0], {"role": "assistant", "tool_calls": [{**call(), "id": ""}]}]},
            "messages[1].tool_calls[0].id",
        ),
        ({"model": "m", "messages": [USER[0], {"role": "assistant", "tool_calls": [call(), call()]}]}, "messages[1].tool_calls[1].id"),
        ({"model": "m", "messages": [USER[0], {"role": "assistant", "content": None}]}, "messages[1].content"),
    ],
)
def test_bad_tool_definitions_calls_and_results_name_the_parameter(body: Any, param: str) -> None:
    with pytest.raises(InvalidCompletionRequest) as caught:
        parse(body)
    assert caught.value.param == param


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"\xff\xfe", "UTF-8"),
        (b"{", "not valid JSON"),
        (b"[" * 100_000, "nested"),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "nested"),
        (b'{"message": "\\ud800"}', "surrogate"),
        (b'{"\\udc00": 1}', "surrogate"),
        (b'{"a": NaN}', "NaN"),
        (b"[Infinity]", "Infinity"),
    ],
)
def test_hostile_json_is_refused(raw: bytes, says: str) -> None:
    with pytest.raises(InvalidJSON, match=says):
        load_json(raw)


def test_ordinary_json_and_paired_surrogates_pass() -> None:
    assert load_json('{"message": "caf\\u00e9 \\ud83d\\ude00"}'.encode()) == {"message": "caf\u00e9 \U0001f600"}
    assert load_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH)


def test_chunk_format_is_the_openai_wire_format() -> None:
    chunks = ChunkFormat("chatcmpl-1", "m", 7, include_usage=True)
    start = chunks.frame(Event(0, "start", {}))
    token = chunks.frame(Event(1, "token", {"text": "Hi"}))
    end = chunks.frame(Event(2, "end", {"finish_reason": "stop", "usage": {"input_tokens": 2, "output_tokens": 1, "total_tokens": 3}}))
    assert json.loads(start[6:])["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert json.loads(token[6:])["choices"][0] == {"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}
    finish, usage, done = end.split(b"\n\n")[:3]
    assert json.loads(finish[6:])["choices"][0]["finish_reason"] == "stop"
    assert json.loads(usage[6:])["usage"] == {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}
    assert end.endswith(DONE)
    error = chunks.frame(Event(3, "error", {"error": {"type": "upstream_error", "message": "m", "retryable": True}}))
    assert json.loads(error[6:]) == {"error": {"message": "m", "type": "upstream_error", "param": None, "code": None}}
    assert DONE not in error
    assert openai_usage(None) == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def test_limiter_admits_up_to_its_limit_and_releases_once() -> None:
    limiter = StreamLimiter(2)
    first, second = limiter.try_acquire(), limiter.try_acquire()
    assert callable(first) and callable(second) and limiter.try_acquire() == Refusal(OVERLOADED)
    first()
    first()  # a second release changes nothing
    assert limiter.active == 1 and callable(limiter.try_acquire())
    assert all(callable(StreamLimiter(0).try_acquire()) for _ in range(100))


def test_limiter_gives_each_client_its_share() -> None:
    limiter = StreamLimiter(10, per_client=2)
    a1, a2 = limiter.try_acquire("a"), limiter.try_acquire("a")
    assert callable(a1) and callable(a2)
    refused = limiter.try_acquire("a")
    assert isinstance(refused, Refusal) and refused.reason == CLIENT_LIMIT and refused.status == 429
    assert callable(limiter.try_acquire("b"))  # another client still gets in
    a1()
    assert limiter.held_by("a") == 1 and callable(limiter.try_acquire("a"))
    assert Refusal(OVERLOADED).status == 503
