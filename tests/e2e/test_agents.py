"""Agents and tools end to end: a real ``create_agent`` graph on the real ChatOpenAI, served by a
real gunicorn gevent worker, against the local OpenAI-protocol upstream that streams tool calls.

The stream shows the whole run in order; a tool's long pause survives a real nginx thanks to
heartbeats (and is cut without them); a client that leaves during a tool stops the run, the
tool included, and the model is not called again; real OpenAI clients round-trip tool calls
through ``/v1`` exactly; a resume in the middle of a call's argument fragments loses nothing.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Iterator

import httpx
import openai
import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_openai import ChatOpenAI

from tests.conftest import openai_env
from tests.support.clients import StreamRecord, read_stream
from tests.support.openai_upstream import OpenAIUpstream, Script, answer_text, call_id
from tests.support.proxies import Nginx, Variant, require_binary
from tests.support.servers import GunicornServer

pytestmark = pytest.mark.e2e

SLOW_ARGS = '{"topic": "gevent", "seconds": 4}'
AGENT = "/api/agent/events"


def agent_events(server: GunicornServer, path: str = AGENT, **kwargs: object) -> StreamRecord:
    return read_stream("POST", server.url + path, json={"message": "look it up"}, **kwargs)  # type: ignore[arg-type]


def seen(kind: str, count: int = 1) -> Callable[[StreamRecord], bool]:
    return lambda record: record.kinds.count(kind) >= count


@pytest.fixture(scope="module")
def agent_app(upstream_server: OpenAIUpstream, artifacts: Path) -> Iterator[GunicornServer]:
    """One gevent worker running the demo agent on ChatOpenAI, cancel on disconnect, 1 s heartbeats."""
    env = openai_env(upstream_server, WEBAPP_HEARTBEAT_SECONDS="1", WEBAPP_ON_DISCONNECT="cancel")
    server = GunicornServer(artifacts, env=env, app="tests.support.agent_apps:app", name="agents")
    yield server.start()
    server.stop()


def test_an_agent_run_streams_calls_results_text_and_end_in_order(agent_app: GunicornServer, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=5, tool_calls=(("calculate", '{"expression": "6*7"}'),))
    record = agent_events(agent_app)
    kinds = [k for k in record.kinds if k != "step"]
    deltas = kinds.count("tool_call_delta")
    assert kinds == ["start", "tool_call"] + ["tool_call_delta"] * deltas + ["tool_call_end", "tool_result"] + ["token"] * 5 + ["end"]
    assert deltas >= 3  # the arguments arrived in fragments, as the upstream sent them
    (call,) = record.of_kind("tool_call")
    assert call.json() == {"id": call_id(1, 0), "name": "calculate", "index": 0}
    assert "".join(e.json()["args"] for e in record.of_kind("tool_call_delta")) == '{"expression": "6*7"}'
    assert record.of_kind("tool_call_end")[0].json() == {"id": call_id(1, 0), "name": "calculate", "args": {"expression": "6*7"}}
    assert record.of_kind("tool_result")[0].json() == {
        "tool_call_id": call_id(1, 0),
        "name": "calculate",
        "content": "42",
        "status": "success",
    }
    assert record.text == answer_text(5)
    assert [e.json()["node"] for e in record.of_kind("step")] == ["model", "tools", "model"]
    end = record.terminal.json()  # type: ignore[union-attr]
    assert end["finish_reason"] == "stop" and end["tokens"] == 5 and "tool_calls" not in end
    # The model was called twice: once to ask for the tool, once with its result.
    first, second = upstream.wait_for_requests(2)
    assert first.body["tools"][0]["function"]["name"] == "get_current_time"
    assert second.body["messages"][-1] == {"role": "tool", "tool_call_id": call_id(1, 0), "content": "42"}


def test_negative_control_the_same_graph_through_the_text_only_path_shows_nothing(
    agent_app: GunicornServer, upstream: OpenAIUpstream
) -> None:
    upstream.script = Script(tokens=5, tool_calls=(("calculate", '{"expression": "6*7"}'),))
    record = agent_events(agent_app, "/api/agent/text-only-events")
    assert record.kinds == ["start", "end"]  # the run happened (two model calls), yet nothing but a clean end
    assert record.terminal.json()["tokens"] == 0  # type: ignore[union-attr]
    assert len(upstream.wait_for_requests(2)) == 2


def test_a_tool_error_is_a_result_the_model_sees_not_a_failed_stream(agent_app: GunicornServer, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=3, tool_calls=(("calculate", '{"expression": "1/0"}'),))
    record = agent_events(agent_app)
    (result,) = record.of_kind("tool_result")
    assert result.json()["status"] == "error" and result.json()["content"] == "division by zero"
    assert record.terminal.event == "end"  # type: ignore[union-attr]


def test_a_client_that_leaves_during_a_slow_tool_stops_the_run_and_the_model_is_not_called_again(
    agent_app: GunicornServer, upstream: OpenAIUpstream
) -> None:
    upstream.script = Script(tokens=5, tool_calls=(("slow_lookup", '{"topic": "gevent", "seconds": 6}'),))
    record = agent_events(agent_app, stop_when=seen("tool_call_end"))
    left = time.monotonic()
    stream_id = record.of_kind("start")[0].json()["stream_id"]
    status = {}
    while time.monotonic() - left < 5:
        status = httpx.get(f"{agent_app.url}/api/streams/{stream_id}").json()
        if status["status"] != "running":
            break
        time.sleep(0.02)
    cancel_latency = time.monotonic() - left
    assert status["status"] == "cancelled", status
    assert cancel_latency < 1.0, f"the run went on for {cancel_latency:.2f}s after the client left"
    time.sleep(6.5)  # past the tool's six seconds: a tool left running would finish and call the model again
    assert len(upstream.requests) == 1
    assert "slow_lookup finished" not in agent_app.log()  # the tool itself was stopped where it slept


@pytest.fixture(scope="module")
def continuing_agent(upstream_server: OpenAIUpstream, artifacts: Path) -> Iterator[GunicornServer]:
    env = openai_env(upstream_server, WEBAPP_HEARTBEAT_SECONDS="1", WEBAPP_ON_DISCONNECT="continue", WEBAPP_RESUME_GRACE_SECONDS="1")
    server = GunicornServer(artifacts, env=env, name="agents-continue")
    yield server.start()
    server.stop()


def test_under_continue_a_run_left_during_a_tool_stops_once_the_grace_has_passed(
    continuing_agent: GunicornServer, upstream: OpenAIUpstream
) -> None:
    upstream.script = Script(tokens=5, tool_calls=(("slow_lookup", '{"topic": "gevent", "seconds": 5}'),))
    record = agent_events(continuing_agent, stop_when=seen("tool_call_end"))
    left = time.monotonic()
    stream_id = record.of_kind("start")[0].json()["stream_id"]
    url = f"{continuing_agent.url}/api/streams/{stream_id}"
    assert httpx.get(url).json()["status"] == "running"  # still going: a reconnect could find it
    while httpx.get(url).json()["status"] == "running" and time.monotonic() - left < 5:
        time.sleep(0.05)
    stopped_after = time.monotonic() - left
    assert httpx.get(url).json()["status"] == "cancelled"
    assert 0.9 <= stopped_after < 2.5, stopped_after  # the 1 s grace, not the tool's 5 s
    time.sleep(4.5)
    assert len(upstream.requests) == 1
    assert "slow_lookup finished" not in continuing_agent.log()


# -- a tool's pause behind a real nginx ---------------------------------------------------


@pytest.fixture
def nginx_factory(tmp_path: Path) -> Iterator[Callable[[GunicornServer], Nginx]]:
    require_binary("nginx", "nginx")  # before the test starts the app it would proxy
    started: list[Nginx] = []

    def start(app: GunicornServer) -> Nginx:
        proxy = Nginx(tmp_path, app.port, Variant(idle_timeout_seconds=2))
        started.append(proxy)
        return proxy.start()  # type: ignore[return-value]

    yield start
    for proxy in started:
        proxy.stop()


@pytest.mark.parametrize("heartbeat_seconds", ["1", "0"], ids=["heartbeats", "negative-control-no-heartbeats"])
def test_a_tool_longer_than_nginx_read_timeout_survives_only_with_heartbeats(
    heartbeat_seconds: str,
    upstream_server: OpenAIUpstream,
    upstream: OpenAIUpstream,
    artifacts: Path,
    nginx_factory: Callable[[GunicornServer], Nginx],
) -> None:
    upstream.script = Script(tokens=5, tool_calls=(("slow_lookup", SLOW_ARGS),))  # 4 s of tool, nginx gives up after 2 s idle
    app = GunicornServer(
        artifacts, env=openai_env(upstream_server, WEBAPP_HEARTBEAT_SECONDS=heartbeat_seconds), name=f"agent-nginx-{heartbeat_seconds}"
    )
    app.start()
    try:
        proxy = nginx_factory(app)
        record = read_stream("POST", proxy.url + AGENT, json={"message": "look it up"})
    finally:
        app.stop()
    if heartbeat_seconds == "1":
        assert record.terminal is not None and record.terminal.event == "end", record.kinds
        assert record.text == answer_text(5)
        # Heartbeats filled the tool's pause: between the call's end and its result, no silence near nginx's 2 s.
        call_end = next(t for t, e in record.events if e.event == "tool_call_end")
        result = next(t for t, e in record.events if e.event == "tool_result")
        beats = [t for t, _ in record.comments if call_end < t < result]
        marks = [call_end, *beats, result]
        assert result - call_end > 3.5 and len(beats) >= 3
        assert max(b - a for a, b in zip(marks, marks[1:])) < 1.6
    else:
        assert record.terminal is None, "without heartbeats nginx should have cut the stream during the tool"
        assert "tool_call_end" in record.kinds and "tool_result" not in record.kinds


# -- /v1 with tools, through real OpenAI clients ------------------------------------------------


PARALLEL = (("get_weather", '{"city": "Paris", "unit": "celsius"}'), ("get_time", '{"timezone": "Europe/Paris"}'))
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "strict": True,
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                "required": ["city", "unit"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "strict": True,
            "parameters": {
                "type": "object",
                "properties": {"timezone": {"type": "string"}},
                "required": ["timezone"],
                "additionalProperties": False,
            },
        },
    },
]


@pytest.fixture(scope="module")
def v1_app(upstream_server: OpenAIUpstream, artifacts: Path) -> Iterator[GunicornServer]:
    server = GunicornServer(artifacts, env=openai_env(upstream_server, WEBAPP_HEARTBEAT_SECONDS="1"), name="agents-v1")
    yield server.start()
    server.stop()


def test_the_openai_sdks_strict_accumulator_round_trips_two_parallel_calls_then_gets_text(
    v1_app: GunicornServer, upstream: OpenAIUpstream
) -> None:
    upstream.script = Script(tokens=4, tool_calls=PARALLEL, args_fragment=5)
    client = openai.OpenAI(base_url=v1_app.url + "/v1", api_key="unused", max_retries=0, timeout=30)
    messages: list[dict] = [{"role": "user", "content": "weather and time in Paris?"}]
    with client.chat.completions.stream(model="m", messages=messages, tools=TOOLS) as stream:  # type: ignore[arg-type]
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        (call_id(1, 0), "get_weather", PARALLEL[0][1]),
        (call_id(1, 1), "get_time", PARALLEL[1][1]),
    ]
    assert calls[0].function.parsed_arguments == {"city": "Paris", "unit": "celsius"}  # type: ignore[union-attr]
    # What the service forwarded upstream: the tools and the choice, as given.
    assert upstream.requests[0].body["tools"] == TOOLS

    messages.append(choice.message.model_dump(exclude_none=True, include={"role", "content", "tool_calls"}))
    messages += [{"role": "tool", "tool_call_id": c.id, "content": f"result of {c.function.name}"} for c in calls]
    answer = client.chat.completions.create(model="m", messages=messages, tools=TOOLS)  # type: ignore[arg-type]
    assert answer.choices[0].message.content == answer_text(4) and answer.choices[0].finish_reason == "stop"
    sent = upstream.requests[1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool"]
    assert [c["id"] for c in sent[1]["tool_calls"]] == [call_id(1, 0), call_id(1, 1)]
    assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris", "unit": "celsius"}


def test_chat_openai_bound_to_tools_through_the_service(v1_app: GunicornServer, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=3, tool_calls=PARALLEL)
    llm = ChatOpenAI(model="m", base_url=v1_app.url + "/v1", api_key="unused", max_retries=0).bind_tools(TOOLS)  # type: ignore[arg-type]
    message = None
    for chunk in llm.stream([HumanMessage("weather and time?")]):
        message = chunk if message is None else message + chunk
    assert message is not None
    assert [(c["id"], c["name"], c["args"]) for c in message.tool_calls] == [
        (call_id(1, 0), "get_weather", {"city": "Paris", "unit": "celsius"}),
        (call_id(1, 1), "get_time", {"timezone": "Europe/Paris"}),
    ]
    results = [ToolMessage(f"result {i}", tool_call_id=c["id"]) for i, c in enumerate(message.tool_calls)]
    answer = llm.invoke([HumanMessage("weather and time?"), message, *results])
    assert answer.content == answer_text(3)
    invoked = ChatOpenAI(model="m", base_url=v1_app.url + "/v1", api_key="unused", max_retries=0).bind_tools(TOOLS).invoke("again")  # type: ignore[arg-type]
    assert [c["name"] for c in invoked.tool_calls] == ["get_weather", "get_time"]  # non-streaming: message.tool_calls


def test_resuming_in_the_middle_of_a_calls_argument_fragments_loses_and_repeats_nothing(
    continuing_agent: GunicornServer, upstream: OpenAIUpstream
) -> None:
    arguments = '{"expression": "(1 + 2) * (3 + 4) * (5 + 6)"}'
    upstream.script = Script(tokens=4, interval=0.1, tool_calls=(("calculate", arguments),), args_fragment=4)
    first = agent_events(continuing_agent, stop_when=seen("tool_call_delta", 3))
    last = [e.id for _, e in first.events if e.id][-1]
    stream_id = last.split(":")[0]
    rest = read_stream("GET", f"{continuing_agent.url}/api/streams/{stream_id}/events", headers={"Last-Event-ID": last})
    events = [e for part in (first, rest) for _, e in part.events]
    seqs = [int(e.id.split(":")[1]) for e in events if e.id]
    assert seqs == list(range(len(seqs)))  # every event once, in order
    assert "".join(e.json()["args"] for e in events if e.event == "tool_call_delta") == arguments
    assert rest.terminal is not None and rest.terminal.event == "end"
    assert "".join(e.json()["text"] for e in events if e.event == "token") == answer_text(4)


# -- examples/agent_app.py: create_agent handed to sse_response, in a user's own app ---------------------------


def test_the_agent_example_streams_its_tool_call_and_stops_the_tool_when_the_client_leaves(
    upstream_server: OpenAIUpstream, upstream: OpenAIUpstream, artifacts: Path
) -> None:
    env = {**openai_env(upstream_server), "EXAMPLE_MODEL": "upstream-model", "EXAMPLE_WEATHER_SECONDS": "3"}
    server = GunicornServer(artifacts, env=env, app="examples.agent_app:app", name="agent-example", ready_path="/")
    server.start()
    try:
        upstream.script = Script(tokens=4, tool_calls=(("get_weather", '{"city": "Paris"}'),))
        record = read_stream("POST", server.url + "/ask", json={"question": "Weather in Paris?"})
        assert [k for k in record.kinds if k not in ("step", "tool_call_delta")] == (
            ["start", "tool_call", "tool_call_end", "tool_result"] + ["token"] * 4 + ["end"]
        )
        assert record.of_kind("tool_result")[0].json()["content"] == "It is sunny and 21 °C in Paris."
        upstream.reset(Script(tokens=4, tool_calls=(("get_weather", '{"city": "Paris"}'),)))
        read_stream("POST", server.url + "/ask", json={"question": "Weather?"}, stop_when=seen("tool_call_end"))
        time.sleep(4)  # past the tool's 3 s: the library's default policy (cancel) stopped the run
        assert len(upstream.requests) == 1
    finally:
        server.stop()
