"""The demo agent and /v1 function calling on the embedded scripted model (no key, no network).

The scripted model calls the demo agent's tools as a real model would, so
the whole rich stream (calls, fragments, results, steps, text) can be
checked here in milliseconds; e2e/test_agents.py does it with ChatOpenAI.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import FAST_SCRIPTED
from uncut.sse import ServerSentEvent, parse_stream
from webapp import create_app


@pytest.fixture
def client() -> FlaskClient:
    return create_app({**FAST_SCRIPTED, "WEBAPP_AGENT_SLOW_TOOL_SECONDS": "0.2"}, environ={}).test_client()


def events(response: Any) -> list[ServerSentEvent]:
    return [e for e in parse_stream([response.data]) if isinstance(e, ServerSentEvent)]


def test_the_demo_agent_streams_its_tool_calls_results_and_answer(client: FlaskClient) -> None:
    response = client.post("/api/agent/events", json={"message": "calculate (6*7)+1 and tell me the time"})
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    received = events(response)
    kinds = [e.event for e in received]
    assert kinds[0] == "start" and kinds[-1] == "end"
    calls = {e.json()["name"]: e.json() for e in received if e.event == "tool_call_end"}
    assert set(calls) == {"calculate", "get_current_time"}  # two parallel calls, each with its own id
    results = {e.json()["name"]: e.json() for e in received if e.event == "tool_result"}
    assert results["calculate"]["content"] == "43" and results["calculate"]["status"] == "success"
    assert results["calculate"]["tool_call_id"] == calls["calculate"]["id"]
    assert kinds.index("tool_call_end") < kinds.index("tool_result") < kinds.index("token")
    text = "".join(e.json()["text"] for e in received if e.event == "token")
    assert 'The calculate tool returned "43".' in text
    assert received[-1].json()["finish_reason"] == "stop" and "tool_calls" not in received[-1].json()
    assert [int(e.id.split(":")[1]) for e in received] == list(range(len(received)))


def test_a_slow_tool_and_a_failing_tool(client: FlaskClient) -> None:
    received = events(client.post("/api/agent/events", json={"message": "look it up slowly"}))
    (result,) = [e.json() for e in received if e.event == "tool_result"]
    assert result["name"] == "slow_lookup" and result["status"] == "success"
    received = events(client.post("/api/agent/events", json={"message": "calculate 1/0"}))
    (result,) = [e.json() for e in received if e.event == "tool_result"]
    assert result == {**result, "status": "error", "content": "division by zero"}
    assert received[-1].event == "end"


def test_a_bare_model_asking_for_tools_ends_with_its_calls(client: FlaskClient) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    response = client.post(
        "/v1/chat/completions",
        json={
            "model": "m",
            "messages": [{"role": "user", "content": "weather in Paris"}],
            "tools": tools,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    chunks = [json.loads(f[6:]) for f in response.get_data(as_text=True).split("\n\n") if f.startswith("data: {")]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    first = deltas[1]["tool_calls"][0]
    assert first["index"] == 0 and first["type"] == "function" and first["function"] == {"name": "get_weather", "arguments": ""}
    arguments = "".join(d["tool_calls"][0]["function"]["arguments"] for d in deltas if "tool_calls" in d)
    assert json.loads(arguments)["city"]
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"
    assert response.get_data(as_text=True).endswith("data: [DONE]\n\n")

    whole = client.post(
        "/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "weather in Paris"}], "tools": tools}
    )
    message = whole.json["choices"][0]["message"]
    assert message["content"] is None and message["tool_calls"][0]["function"]["name"] == "get_weather"
    assert whole.json["choices"][0]["finish_reason"] == "tool_calls"
    answered = client.post(
        "/v1/chat/completions",
        json={
            "model": "m",
            "tools": tools,
            "messages": [
                {"role": "user", "content": "weather in Paris"},
                message,
                {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "sunny"},
            ],
        },
    )
    assert answered.json["choices"][0]["message"]["content"].startswith('The get_weather tool returned "sunny".')


BAD_TOOL_REQUESTS = [
    ({"tools": "get_weather"}, "tools"),
    ({"tools": [{"type": "function", "function": {"name": "a b"}}]}, "tools[0].function.name"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]}, "tools[0].function.parameters"),
    ({"tool_choice": "sometimes"}, "tool_choice"),
    ({"parallel_tool_calls": "no"}, "parallel_tool_calls"),
    ({"messages": [{"role": "tool", "tool_call_id": "call_9", "content": "x"}]}, "messages[0].tool_call_id"),
    (
        {
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]},
            ]
        },
        "messages[1].tool_calls[0].function.arguments",
    ),
]


@pytest.mark.parametrize(("fields", "param"), BAD_TOOL_REQUESTS)
def test_malformed_tools_and_tool_messages_get_openai_shaped_400s_and_the_service_keeps_serving(
    client: FlaskClient, fields: dict[str, Any], param: str
) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json["error"]["type"] == "invalid_request_error" and response.json["error"]["param"] == param
    assert client.post("/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "hi"}]}).status_code == 200
