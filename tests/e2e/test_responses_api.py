"""OpenAI's Responses API (``POST /v1/responses``) against a real gunicorn, with clients nobody here wrote.

The openai SDK's ``client.responses.stream()`` checks every event of the
lifecycle and raises on a slip; ``create()`` streamed and not; and
LangChain's ``ChatOpenAI(use_responses_api=True)`` pointed at the service,
reasoning and tool calls included. The service itself streams from the
local OpenAI-protocol upstream through the real ChatOpenAI. Negative
control: the same recorded stream with ``response.output_item.added``
removed makes the same SDK raise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import httpx
import openai
import pytest
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from tests.conftest import openai_env
from tests.support.openai_upstream import OpenAIUpstream, Script, answer_text
from tests.support.replay import replay_server, without_blocks
from tests.support.servers import GunicornServer

pytestmark = pytest.mark.e2e

KEY = "responses-key-0123456789"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "strict": True,
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": False},
}


@pytest.fixture(scope="module")
def service(upstream_server: OpenAIUpstream, artifacts: Path) -> Iterator[GunicornServer]:
    server = GunicornServer(artifacts, env=openai_env(upstream_server, WEBAPP_API_KEYS=KEY, WEBAPP_HEARTBEAT_SECONDS="1"), name="responses")
    yield server.start()
    server.stop()


@pytest.fixture(scope="module")
def reasoning_service(artifacts: Path) -> Iterator[GunicornServer]:
    env = {
        "WEBAPP_PROVIDER": "scripted",
        "WEBAPP_SCRIPTED_REASONING": "true",
        "WEBAPP_SCRIPTED_TTFT_MS": "0",
        "WEBAPP_SCRIPTED_INTERVAL_MS": "5",
    }
    server = GunicornServer(artifacts, env=env, name="responses-reasoning")
    yield server.start()
    server.stop()


@pytest.fixture
def sdk(service: GunicornServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=service.url + "/v1", api_key=KEY, max_retries=0, timeout=30)


def test_responses_stream_text(sdk: openai.OpenAI, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=6, interval=0.02)
    with sdk.responses.stream(model="any", input="hi", instructions="be terse") as stream:
        kinds = [event.type for event in stream]
        response = stream.get_final_response()
    assert response.output_text == answer_text(6)
    assert response.status == "completed" and response.instructions == "be terse"
    assert kinds.count("response.output_text.delta") == 6 and kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert response.usage is not None and response.usage.output_tokens == 6
    assert upstream.requests[0].body["messages"][0] == {"content": "be terse", "role": "system"}


def test_responses_stream_parallel_function_calls_then_the_answer_from_their_outputs(sdk: openai.OpenAI, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(
        tokens=4, tool_calls=(("get_weather", '{"city":"Paris"}'), ("get_weather", '{"city":"Rome"}')), args_fragment=5
    )
    with sdk.responses.stream(model="any", input="weather in Paris and Rome?", tools=[WEATHER]) as stream:
        response = stream.get_final_response()
    calls = [item for item in response.output if item.type == "function_call"]
    assert [call.parsed_arguments for call in calls] == [{"city": "Paris"}, {"city": "Rome"}]  # strict: parsed by the SDK
    assert len({call.call_id for call in calls}) == 2
    assert upstream.requests[0].body["tools"][0]["function"]["name"] == "get_weather"

    follow_up = [
        {"role": "user", "content": "weather in Paris and Rome?"},
        *({"type": "function_call", "call_id": c.call_id, "name": c.name, "arguments": c.arguments} for c in calls),
        *({"type": "function_call_output", "call_id": c.call_id, "output": json.dumps({"temp_c": 20 + i})} for i, c in enumerate(calls)),
    ]
    answer = sdk.responses.create(model="any", input=follow_up, tools=[WEATHER])  # not streamed: one JSON Response
    assert answer.output_text == answer_text(4)
    sent = upstream.requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool"]


def test_create_stream_events_are_numbered_and_non_stream_returns_the_response(sdk: openai.OpenAI, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=3)
    events = list(sdk.responses.create(model="any", input="hi", stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    response = sdk.responses.create(model="any", input="hi", max_output_tokens=50, metadata={"team": "a"})
    assert response.output_text == answer_text(3) and response.metadata == {"team": "a"} and response.max_output_tokens == 50


def test_a_failure_mid_stream_is_response_failed_and_the_sdk_says_so(sdk: openai.OpenAI, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=10, interval=0.01, drop_at=3)
    with sdk.responses.stream(model="any", input="hi") as stream:
        events = list(stream)
        with pytest.raises(RuntimeError, match="response.completed"):
            stream.get_final_response()
    assert events[-1].type == "response.failed"
    assert events[-1].response.error.code == "server_error" and "upstream_unavailable" in events[-1].response.error.message
    assert events[-1].response.output[0].content[0].text == answer_text(3)  # what came is kept, marked incomplete


def test_refused_requests_are_openai_errors_naming_the_param(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.responses.create(model="any", input="hi", previous_response_id="resp_123")
    assert raised.value.param == "previous_response_id" and "keeps no responses" in raised.value.message
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.responses.create(model="any", input="hi", tools=[{"type": "web_search"}])
    assert raised.value.param == "tools[0].type"


def test_chat_openai_on_the_responses_api_streams_reasoning_and_calls_tools(reasoning_service: GunicornServer) -> None:
    llm = ChatOpenAI(
        model="any", base_url=reasoning_service.url + "/v1", api_key="unused", use_responses_api=True, max_retries=0, timeout=30
    )
    chunks = list(llm.stream("hello there"))
    blocks = [block for chunk in chunks for block in (chunk.content if isinstance(chunk.content, list) else [])]
    reasoning = "".join(s.get("text", "") for b in blocks if b.get("type") == "reasoning" for s in b.get("summary", []))
    text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
    assert reasoning.startswith('The question is about "hello there".')
    assert text.startswith('You asked: "hello there".')

    @tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return "sunny"

    asked = llm.bind_tools([get_weather]).invoke("What is the weather in Paris?")
    assert [call["name"] for call in asked.tool_calls] == ["get_weather"]
    assert isinstance(asked.tool_calls[0]["args"], dict)


def test_negative_control_the_sdk_raises_when_output_item_added_is_missing(service: GunicornServer, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=3)
    recorded = httpx.post(
        service.url + "/v1/responses",
        json={"model": "any", "input": "hi", "stream": True},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=30,
    ).content
    broken = without_blocks(recorded, lambda block: block.startswith(b"event: response.output_item.added\n"))
    for body, fails in ((broken, True), (recorded, False)):
        with replay_server(body) as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=10)
            with client.responses.stream(model="any", input="hi") as stream:
                if fails:
                    with pytest.raises(RuntimeError, match="before receiving its output item"):
                        stream.get_final_response()
                else:
                    assert stream.get_final_response().output_text == answer_text(3)
