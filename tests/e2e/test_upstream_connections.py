"""End to end: how the service's openai client uses its upstream connections (webapp/upstream_client.py).

The synchronous openai SDK stops reading a stream at ``data: [DONE]`` and
so drops the connection after every stream; the service reads the rest and
reuses it. Shown against the stock SDK (the negative control), with a
server that holds the response open after ``[DONE]`` (the drain is bounded),
and with a server that closes idle connections (a dead one is not reused).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterator

import openai
import pytest

from tests.conftest import openai_env
from tests.support.clients import StreamRecord, read_stream
from tests.support.openai_upstream import OpenAIUpstream, Script, answer_text
from tests.support.servers import GunicornServer
from uncut.upstream_client import DRAIN_SECONDS, POOL_SHARDS

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def served(upstream_server: OpenAIUpstream, artifacts: Path) -> Iterator[GunicornServer]:
    server = GunicornServer(artifacts, env=openai_env(upstream_server), name="connections")
    server.start()
    yield server
    server.stop()


def stream_once(server: GunicornServer) -> StreamRecord:
    record = read_stream("POST", server.url + "/api/chat/events", json={"message": "hi"})
    assert record.kinds[-1] == "end", record.kinds
    return record


def test_sequential_streams_reuse_their_upstream_connections(served: GunicornServer, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=3)
    streams = 3 * POOL_SHARDS  # round-robin over the pool shards: each shard's connection carries three
    for _ in range(streams):
        assert stream_once(served).text == answer_text(3)
    peers = [request.peer for request in upstream.wait_for_requests(streams)]
    assert len(set(peers)) <= POOL_SHARDS, f"{len(set(peers))} connections for {streams} streams"


def test_negative_control_the_stock_sync_sdk_opens_a_connection_per_stream(upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=3)
    client = openai.OpenAI(api_key="test-key-not-secret", base_url=upstream.base_url, max_retries=0)
    for _ in range(4):
        stream = client.chat.completions.create(model="upstream-model", messages=[{"role": "user", "content": "hi"}], stream=True)
        assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices) == answer_text(3)
    peers = [request.peer for request in upstream.wait_for_requests(4)]
    assert len(set(peers)) == 4, peers
    client.close()


def test_a_response_held_open_after_done_does_not_hold_up_the_end(served: GunicornServer, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=3, hold_after_done=6.0)
    started = time.monotonic()
    record = stream_once(served)
    took = time.monotonic() - started
    assert record.text == answer_text(3)
    assert took < DRAIN_SECONDS + 3.0 < 6.0, f"the end came after {took:.1f}s"
    (held,) = upstream.wait_for_requests(1, timeout=10)
    held.done.wait(10)
    assert held.client_closed_at is not None, "the service should drop a connection whose response never ended"
    assert held.client_closed_at - held.started < 6.0
    upstream.reset(Script(tokens=3))
    stream_once(served)  # and the next stream gets a fresh connection
    (fresh,) = upstream.wait_for_requests(1)
    assert fresh.peer != held.peer


def test_an_idle_connection_the_server_closed_is_not_reused(served: GunicornServer, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=3, close_after=True)
    stream_once(served)
    time.sleep(0.2)  # the server has closed it by now: the pool must notice before sending on it
    for _ in range(2):
        assert stream_once(served).transport_error is None
    peers = [request.peer for request in upstream.wait_for_requests(3)]
    assert len(set(peers)) == 3, peers


@pytest.mark.parametrize("raw_chunks", ["true", "false"])
def test_raw_chunks_on_and_off_give_the_same_stream(
    gunicorn: Callable[..., GunicornServer], upstream: OpenAIUpstream, raw_chunks: str
) -> None:
    server = gunicorn(env=openai_env(upstream, WEBAPP_UPSTREAM_RAW_CHUNKS=raw_chunks))
    upstream.script = Script(tokens=5)
    record = stream_once(server)
    assert record.text == answer_text(5)
    end = record.terminal
    assert end is not None
    assert end.json()["finish_reason"] == "stop"
    usage = end.json()["usage"]
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) == (5, 5, 10)
