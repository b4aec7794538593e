"""Property-based: whatever the body, no 5xx; a stream ends in end / [DONE], anything else is a JSON error."""

from __future__ import annotations

import json
from typing import Any

from flask.testing import FlaskClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.conftest import FAST_SCRIPTED
from uncut.sse import ServerSentEvent, parse_stream
from webapp import create_app

APP = create_app(
    {**FAST_SCRIPTED, "WEBAPP_SCRIPTED_INTERVAL_MS": "0", "WEBAPP_MAX_MESSAGE_CHARS": "2000", "WEBAPP_AGENT_SLOW_TOOL_SECONDS": "0"},
    environ={},
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
roles = st.sampled_from(["user", "system", "assistant", "developer", "tool", "", "USER"]) | json_values
contents = (
    st.text(max_size=60)
    | json_values
    | st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=20)}), max_size=3)
)
messages = st.lists(st.fixed_dictionaries({"role": roles, "content": contents}) | json_values, max_size=4)

words = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FFF), min_size=1, max_size=60)
valid_messages = st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "system"]), "content": words}), min_size=1, max_size=3)

chat_bodies = st.one_of(
    st.fixed_dictionaries({"message": words}),
    st.fixed_dictionaries({"messages": valid_messages.map(lambda m: [*m, {"role": "user", "content": "q"}])}),
    json_values,
    st.fixed_dictionaries({"message": st.text(max_size=80) | json_values}),
    st.fixed_dictionaries({"messages": messages}),
    st.fixed_dictionaries({"message": st.text(max_size=20), "messages": messages}),
)
completion_bodies = st.one_of(
    st.fixed_dictionaries(
        {"model": words, "messages": valid_messages, "stream": st.booleans()},
        optional={"stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}), "max_tokens": st.integers(1, 50)},
    ),
    json_values,
    st.fixed_dictionaries(
        {"model": st.text(max_size=10) | json_values, "messages": messages},
        optional={
            "stream": st.booleans() | json_values,
            "stream_options": st.fixed_dictionaries({"include_usage": st.booleans() | json_values}) | json_values,
            "max_tokens": st.integers(-5, 5000) | json_values,
            "temperature": st.floats(-1, 3, allow_nan=False) | json_values,
            "stop": st.text(max_size=5) | st.lists(st.text(max_size=5), max_size=6) | json_values,
            "n": st.integers(0, 3) | json_values,
        },
    ),
)


tool_names = st.sampled_from(["get_weather", "calculate", "bad name", ""]) | json_values
tools = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["function", "other"]) | json_values,
            "function": st.fixed_dictionaries({"name": tool_names}, optional={"parameters": json_values, "strict": json_values})
            | json_values,
        }
    )
    | json_values,
    max_size=3,
)
calls = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.sampled_from(["call_1", "call_2"]) | json_values,
            "type": st.just("function"),
            "function": st.fixed_dictionaries(
                {"name": tool_names, "arguments": st.sampled_from(["{}", '{"a": 1}', "{", "[]"]) | json_values}
            ),
        }
    ),
    max_size=2,
)
tool_messages = st.lists(
    st.one_of(
        st.fixed_dictionaries({"role": st.just("user"), "content": words}),
        st.fixed_dictionaries({"role": st.just("assistant"), "content": st.none() | words, "tool_calls": calls}),
        st.fixed_dictionaries(
            {
                "role": st.just("tool"),
                "content": st.text(max_size=20) | json_values,
                "tool_call_id": st.sampled_from(["call_1", "call_2"]) | json_values,
            }
        ),
    ),
    min_size=1,
    max_size=5,
)
tool_bodies = st.fixed_dictionaries(
    {"model": st.just("m"), "messages": tool_messages},
    optional={
        "tools": tools,
        "tool_choice": st.sampled_from(["auto", "none", "required"]) | json_values,
        "parallel_tool_calls": st.booleans() | json_values,
        "stream": st.booleans(),
    },
)

part_types = (
    st.sampled_from(["text", "step-start", "reasoning", "file", "data-x", "tool-get_weather", "dynamic-tool", "source-url", ""])
    | json_values
)
ui_parts = st.lists(
    st.fixed_dictionaries(
        {"type": part_types},
        optional={
            "text": st.text(max_size=20) | json_values,
            "toolCallId": st.sampled_from(["c1", "c2"]) | json_values,
            "toolName": tool_names,
            "state": st.sampled_from(["output-available", "output-error", "input-available"]) | json_values,
            "input": json_values,
            "output": json_values,
            "errorText": json_values,
        },
    )
    | json_values,
    max_size=5,
)
ui_bodies = st.one_of(
    st.fixed_dictionaries({"id": st.just("chat-1"), "messages": st.just([{"role": "user", "parts": [{"type": "text", "text": "q"}]}])}),
    json_values,
    st.fixed_dictionaries(
        {
            "id": st.sampled_from(["chat-1", "a/b", "", ".."]) | json_values,
            "messages": st.lists(st.fixed_dictionaries({"role": roles, "parts": ui_parts}) | json_values, max_size=4),
        },
        optional={"trigger": st.sampled_from(["submit-message", "regenerate-message", "x"]) | json_values, "messageId": json_values},
    ),
)
input_items = st.lists(
    st.one_of(
        st.fixed_dictionaries({"role": roles, "content": contents}),
        st.fixed_dictionaries(
            {
                "type": st.just("function_call"),
                "call_id": st.sampled_from(["c1", "c2"]) | json_values,
                "name": tool_names,
                "arguments": st.sampled_from(["{}", "{", "[]"]) | json_values,
            }
        ),
        st.fixed_dictionaries(
            {
                "type": st.just("function_call_output"),
                "call_id": st.sampled_from(["c1", "c2"]) | json_values,
                "output": st.text(max_size=10) | json_values,
            }
        ),
        json_values,
    ),
    max_size=4,
)
response_bodies = st.one_of(
    st.fixed_dictionaries({"model": words, "input": words, "stream": st.booleans()}),
    json_values,
    st.fixed_dictionaries(
        {"model": st.text(max_size=10) | json_values, "input": words | input_items | json_values},
        optional={
            "stream": st.booleans() | json_values,
            "instructions": st.text(max_size=10) | json_values,
            "tools": st.lists(
                st.fixed_dictionaries({"type": st.sampled_from(["function", "web_search"]) | json_values, "name": tool_names}), max_size=2
            )
            | json_values,
            "tool_choice": st.sampled_from(["auto", "none", "required"]) | json_values,
            "max_output_tokens": st.integers(-5, 5000) | json_values,
            "store": json_values,
            "metadata": json_values,
            "text": json_values,
            "reasoning": json_values,
            "include": json_values,
        },
    ),
)


def check_response(client: FlaskClient, path: str, data: bytes) -> None:
    response = client.post(path, data=data, content_type="application/json")
    event(f"{path} -> {response.status_code}")
    assert response.status_code < 500, response.data[:300]
    if response.status_code != 200:
        body = response.json
        assert isinstance(body["error"]["message"], str) and body["error"]["type"]
        return
    if response.mimetype == "application/json":
        assert response.json["object"] in ("chat.completion", "response")
    elif path == "/v1/responses":
        names = [line.removeprefix("event: ") for line in response.data.decode().splitlines() if line.startswith("event: ")]
        assert names[0] == "response.created" and names[-1] in ("response.completed", "response.incomplete")
    elif path in ("/api/chat/events", "/api/agent/events"):
        events = [e for e in parse_stream([response.data]) if isinstance(e, ServerSentEvent)]
        assert events[0].event == "start" and events[-1].event == "end"
    else:
        frames = [f for f in response.data.decode().split("\n\n") if f]
        assert frames[-1] == "data: [DONE]"
        for frame in frames[:-1]:
            json.loads(frame.removeprefix("data: "))


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(body=chat_bodies)
def test_chat_events_answer_any_json_body(body: Any) -> None:
    check_response(APP.test_client(), "/api/chat/events", json.dumps(body).encode())


@SETTINGS
@given(body=completion_bodies)
def test_chat_completions_answer_any_json_body(body: Any) -> None:
    check_response(APP.test_client(), "/v1/chat/completions", json.dumps(body).encode())


@SETTINGS
@given(body=tool_bodies)
def test_chat_completions_answer_any_tools_and_tool_messages(body: Any) -> None:
    check_response(APP.test_client(), "/v1/chat/completions", json.dumps(body).encode())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=chat_bodies)
def test_the_agent_answers_any_json_body(body: Any) -> None:
    check_response(APP.test_client(), "/api/agent/events", json.dumps(body).encode())


@SETTINGS
@given(body=ui_bodies)
def test_the_ai_sdk_endpoint_answers_any_json_body(body: Any) -> None:
    check_response(APP.test_client(), "/api/ui/chat", json.dumps(body).encode())


@SETTINGS
@given(body=response_bodies)
def test_responses_answer_any_json_body(body: Any) -> None:
    check_response(APP.test_client(), "/v1/responses", json.dumps(body).encode())


@settings(max_examples=100, deadline=None)
@given(raw=st.binary(max_size=200))
def test_any_bytes_get_a_json_error_not_a_crash(raw: bytes) -> None:
    for path in (
        "/api/chat/events",
        "/v1/chat/completions",
        "/api/chat/stream",
        "/api/chat",
        "/api/agent/events",
        "/api/ui/chat",
        "/v1/responses",
    ):
        check_response(APP.test_client(), path, raw)


header_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
request_headers = st.fixed_dictionaries(
    {},
    optional={
        "Origin": st.sampled_from(["null", "https://evil.example", "http://localhost"]) | header_values,
        "Sec-Fetch-Site": st.sampled_from(["cross-site", "same-site", "same-origin", "none"]) | header_values,
        "Last-Event-ID": st.sampled_from(["s_0123456789abcdef:1", "s_0123456789abcdef:999999999"]) | header_values,
        "Authorization": st.sampled_from(["Bearer", "Bearer x", "Basic abc"]) | header_values,
        "X-Forwarded-For": header_values,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    headers=request_headers,
    method=st.sampled_from(["GET", "POST", "OPTIONS", "DELETE"]),
    path=st.sampled_from(
        [
            "/api/chat/events",
            "/api/streams/s_0123456789abcdef",
            "/api/streams/s_0123456789abcdef/events",
            "/api/diagnostics/stream",
            "/v1/chat/completions",
            "/api/agent/events",
            "/",
            "/api/ui/chat",
            "/api/ui/chat/chat-1/stream",
            "/v1/responses",
        ]
    ),
)
def test_any_headers_get_an_answer_not_a_crash(headers: dict[str, str], method: str, path: str) -> None:
    response = APP.test_client().open(path, method=method, headers=headers, json={"message": "q"} if method == "POST" else None)
    event(f"{method} {path} -> {response.status_code}")
    body = response.get_data()  # a stream read to its end: it must not fail halfway, nor run on after the example
    assert response.status_code < 500, body[:300]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    if response.status_code >= 400:
        assert response.json["error"]["type"]
