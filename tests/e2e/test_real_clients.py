"""Clients nobody here wrote, against a real gunicorn: the official openai SDK,
langchain_openai.ChatOpenAI, and httpx-sse. The service itself streams from the
local OpenAI-protocol upstream, so a failure can be injected mid-stream."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import httpx
import openai
import pytest
from httpx_sse import connect_sse
from langchain_openai import ChatOpenAI

from tests.conftest import openai_env
from tests.support.openai_upstream import OpenAIUpstream, Script, answer_text
from tests.support.servers import GunicornServer

pytestmark = pytest.mark.e2e

KEY = "client-key-0123456789"


@pytest.fixture(scope="module")
def service(upstream_server: OpenAIUpstream, artifacts: Path) -> Iterator[GunicornServer]:
    env = openai_env(upstream_server, WEBAPP_API_KEYS=KEY, WEBAPP_HEARTBEAT_SECONDS="1")
    server = GunicornServer(artifacts, env=env, name="real-clients")
    yield server.start()
    server.stop()


@pytest.fixture
def sdk(service: GunicornServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=service.url + "/v1", api_key=KEY, max_retries=0, timeout=30)


def test_openai_sdk_streams_the_tokens(sdk: openai.OpenAI, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=6, interval=0.05)
    stream = sdk.chat.completions.create(
        model="whatever", messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == answer_text(6)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6


def test_openai_sdk_non_streaming(sdk: openai.OpenAI, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=4)
    result = sdk.chat.completions.create(model="whatever", messages=[{"role": "user", "content": "hi"}])
    assert result.choices[0].message.content == answer_text(4)
    assert result.usage is not None and result.usage.total_tokens == 9
    assert [m.id for m in sdk.models.list()] == ["upstream-model"]


def test_openai_sdk_raises_api_error_on_a_mid_stream_failure(sdk: openai.OpenAI, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=8, drop_at=3)
    received = []
    with pytest.raises(openai.APIError):
        for chunk in sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True):
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == answer_text(3)


def test_openai_sdk_sees_bad_requests_and_bad_keys_as_its_own_errors(service: GunicornServer, sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model="m", messages=[{"role": "tool", "content": "x"}])
    stranger = openai.OpenAI(base_url=service.url + "/v1", api_key="not-the-key-000000", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        stranger.models.list()


def test_chat_openai_pointed_at_the_service(service: GunicornServer, upstream: OpenAIUpstream) -> None:
    llm = ChatOpenAI(model="m", base_url=service.url + "/v1", api_key=KEY, max_retries=0)
    upstream.script = Script(tokens=5, interval=0.05)
    chunks = [c.content for c in llm.stream("hello")]
    assert "".join(chunks) == answer_text(5) and len([c for c in chunks if c]) == 5
    upstream.script = Script(tokens=3)
    assert llm.invoke("hello").content == answer_text(3)


def test_httpx_sse_reads_exactly_the_documented_events(service: GunicornServer, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=4, interval=0.05)
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {KEY}"}) as client:
        with connect_sse(client, "POST", service.url + "/api/chat/events", json={"message": "hi"}) as source:
            events = list(source.iter_sse())
    assert [e.event for e in events] == ["start", "token", "token", "token", "token", "end"]
    stream_id = events[0].json()["stream_id"]
    assert [e.id for e in events] == [f"{stream_id}:{n}" for n in range(6)]
    assert "".join(e.json()["text"] for e in events[1:-1]) == answer_text(4)
    assert events[-1].json()["finish_reason"] == "stop" and events[0].retry == 3000
