"""Issue 22, findings 2 and 11, against real gunicorn gevent workers and real clients.

2. The scripted model's tool planner runs on the worker's event loop: with
   128 tools and a 32,000-character prompt, another client's first byte
   must not wait for it. Negative control: the same worker with the old,
   quadratic planner (tests/support/old_tool_planner_wsgi.py) keeps the
   other client waiting for seconds.
11. An emoji whose UTF-16 halves the provider sends in two argument
   fragments (JSON ``\\ud83d`` then ``\\ude00``) arrives whole through the
   real ChatOpenAI, on /v1 (openai SDK and ChatOpenAI) and /v1/responses
   (openai SDK). Before, each half became U+FFFD.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator

import httpx
import openai
import pytest
from langchain_openai import ChatOpenAI

from tests.conftest import openai_env
from tests.support.old_tool_planner import worst_case
from tests.support.openai_upstream import OpenAIUpstream, Script
from tests.support.servers import GunicornServer

pytestmark = pytest.mark.e2e

# -- 11. a surrogate pair split across two argument fragments ----------------------------------------------

HIGH, LOW = "\ud83d", "\ude00"
PREFIX = '{"city": "Paris '
ARGUMENTS = PREFIX + HIGH + LOW + '"}'  # the upstream's JSON escapes each half on its own: \ud83d, then \ude00
WHOLE = {"city": "Paris \U0001f600"}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture(scope="module")
def service(upstream_server: OpenAIUpstream, artifacts: Path) -> Iterator[GunicornServer]:
    server = GunicornServer(artifacts, env=openai_env(upstream_server), name="tool-argument-text")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def split_pair(upstream: OpenAIUpstream) -> OpenAIUpstream:
    # The first fragment ends with the high surrogate, the second begins with the low one.
    upstream.script = Script(tokens=3, tool_calls=(("get_weather", ARGUMENTS),), args_fragment=len(PREFIX) + 1)
    return upstream


def test_the_upstream_really_splits_the_pair(service: GunicornServer, split_pair: OpenAIUpstream) -> None:
    """The scenario holds: the provider's own bytes carry the halves in two fragments."""
    with httpx.stream(
        "POST",
        split_pair.base_url + "/chat/completions",
        json={
            "model": "m",
            "stream": True,
            "messages": [{"role": "user", "content": "x"}],
            "tools": [WEATHER],
        },
        timeout=10,
    ) as response:
        body = response.read().decode()
    deltas = [json.loads(line[6:])["choices"] for line in body.splitlines() if line.startswith("data: {")]
    fragments = [c[0]["delta"]["tool_calls"][0]["function"]["arguments"] for c in deltas if c and "tool_calls" in c[0]["delta"]]
    assert any(f.endswith(HIGH) for f in fragments) and any(f.startswith(LOW) for f in fragments)


def test_v1_chat_completions_through_the_openai_sdk(service: GunicornServer, split_pair: OpenAIUpstream) -> None:
    sdk = openai.OpenAI(base_url=service.url + "/v1", api_key="unused", max_retries=0, timeout=30)
    messages = [{"role": "user", "content": "weather?"}]
    stream = sdk.chat.completions.create(model="m", messages=messages, tools=[WEATHER], stream=True)  # type: ignore[arg-type, list-item]
    arguments = "".join(
        call.function.arguments or ""
        for chunk in stream
        if chunk.choices
        for call in (chunk.choices[0].delta.tool_calls or [])
        if call.function is not None
    )
    assert "\ufffd" not in arguments and json.loads(arguments) == WHOLE


def test_v1_chat_completions_through_chat_openai(service: GunicornServer, split_pair: OpenAIUpstream) -> None:
    llm = ChatOpenAI(model="m", base_url=service.url + "/v1", api_key="unused", max_retries=0)  # type: ignore[arg-type]
    llm = llm.bind_tools([WEATHER])  # type: ignore[assignment]
    chunks = list(llm.stream("weather?"))
    message = chunks[0]
    for chunk in chunks[1:]:
        message = message + chunk  # type: ignore[assignment]
    assert [c["args"] for c in message.tool_calls] == [WHOLE]  # type: ignore[attr-defined]


def test_v1_responses_through_the_openai_sdk(service: GunicornServer, split_pair: OpenAIUpstream) -> None:
    sdk = openai.OpenAI(base_url=service.url + "/v1", api_key="unused", max_retries=0, timeout=30)
    flat = {"type": "function", **WEATHER["function"]}
    with sdk.responses.stream(model="m", input="weather?", tools=[flat]) as stream:  # type: ignore[list-item]
        deltas = "".join(e.delta for e in stream if e.type == "response.function_call_arguments.delta")
        response = stream.get_final_response()
    (call,) = [item for item in response.output if item.type == "function_call"]
    assert "\ufffd" not in call.arguments and json.loads(call.arguments) == WHOLE
    assert json.loads(deltas) == WHOLE


# -- 2. the planner does not hold the worker ------------------------------------------------------------


@pytest.fixture
def scripted(artifacts: Path, request: pytest.FixtureRequest) -> Iterator[Callable[[str], GunicornServer]]:
    started: list[GunicornServer] = []

    def start(app: str) -> GunicornServer:
        env = {
            "WEBAPP_PROVIDER": "scripted",
            "WEBAPP_SCRIPTED_TTFT_MS": "0",
            "WEBAPP_SCRIPTED_INTERVAL_MS": "5",
            "WEBAPP_HEARTBEAT_SECONDS": "1",
        }
        server = GunicornServer(artifacts, env=env, app=app, name=f"planner-{request.node.name[:40]}")
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in started:
            server.stop()


def plan_heavily(url: str, prompt_chars: int) -> int:
    """One /v1 request whose tools and prompt are the planner's worst case; its status."""
    prompt, tools = worst_case(prompt_chars)
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": prompt}], "tools": tools}
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=60) as response:
        response.read()
        return response.status_code


def first_byte_while_planning(server: GunicornServer, prompt_chars: int) -> float:
    """Seconds until another client's stream sends its first byte, while the heavy request is being planned."""
    with ThreadPoolExecutor(1) as pool:
        heavy = pool.submit(plan_heavily, server.url, prompt_chars)
        time.sleep(0.3)  # the heavy request has been read and is being planned
        started = time.monotonic()
        with httpx.stream("POST", server.url + "/api/chat/events", json={"message": "hi"}, timeout=60) as response:
            next(response.iter_raw())
            waited = time.monotonic() - started
        assert heavy.result(timeout=90) == 200
    return waited


def test_planning_128_tools_and_32000_characters_does_not_delay_another_clients_first_byte(
    scripted: Callable[[str], GunicornServer],
) -> None:
    waited = first_byte_while_planning(scripted("wsgi:app"), 32_000)
    print(f"another client's first byte after {waited:.3f}s")
    assert waited < 1.0, waited


def test_negative_control_the_old_planner_holds_the_worker(scripted: Callable[[str], GunicornServer]) -> None:
    """Half the prompt is enough: the old planner's seconds of work block every greenlet of the worker."""
    waited = first_byte_while_planning(scripted("tests.support.old_tool_planner_wsgi:app"), 16_000)
    print(f"another client's first byte after {waited:.3f}s with the old planner")
    assert waited > 2.0, waited
