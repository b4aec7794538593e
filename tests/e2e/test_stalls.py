"""End to end: a provider that goes silent, against the stall limits (uncut.stall).

A real gunicorn gevent worker streams with the real ChatOpenAI from the
local OpenAI-protocol upstream, which stops sending at a scripted token and
holds its connection open without a byte. With limits of 2 s the stream
ends with a retryable ``upstream_timeout`` on time and the upstream sees
its connection closed; a silence before any output is first retried with a
new request. With the limits off (the negative controls) the same streams
are still open, with no terminal event, long after the limit.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import openai_env
from tests.support.clients import StreamRecord, read_stream
from tests.support.openai_upstream import OpenAIUpstream, Script, answer_text
from tests.support.servers import GunicornServer

pytestmark = pytest.mark.e2e

LIMIT = 2.0
MARGIN = 2.5  # a loaded two-core machine; the limit itself is the assertion's floor
STILL_OPEN_AFTER = 3.5 * LIMIT


def _server(upstream: OpenAIUpstream, artifacts: Path, name: str, limit: float) -> GunicornServer:
    return GunicornServer(
        artifacts,
        name=name,
        env=openai_env(
            upstream,
            WEBAPP_HEARTBEAT_SECONDS="1",
            WEBAPP_ON_DISCONNECT="cancel",
            WEBAPP_FIRST_CHUNK_TIMEOUT_SECONDS=f"{limit:g}",
            WEBAPP_BETWEEN_CHUNKS_TIMEOUT_SECONDS=f"{limit:g}",
        ),
    )


@pytest.fixture(scope="module")
def limited(upstream_server: OpenAIUpstream, artifacts: Path) -> Iterator[GunicornServer]:
    server = _server(upstream_server, artifacts, "stall-limited", LIMIT)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def unlimited(upstream_server: OpenAIUpstream, artifacts: Path) -> Iterator[GunicornServer]:
    server = _server(upstream_server, artifacts, "stall-off", 0)
    try:
        yield server.start()
    finally:
        server.stop()


def chat(server: GunicornServer, **kwargs: object) -> StreamRecord:
    return read_stream("POST", server.url + "/api/chat/events", json={"message": "hello"}, **kwargs)  # type: ignore[arg-type]


def arrival(record: StreamRecord, kind: str) -> float:
    return next(t for t, event in record.events if event.event == kind)


def still_open(server: GunicornServer) -> StreamRecord:
    """Read for a few times the limit (heartbeats keep arriving), then leave."""
    return chat(server, stop_when=lambda r: time.monotonic() - r.started > STILL_OPEN_AFTER)


def test_a_provider_silent_mid_answer_ends_the_stream_with_upstream_timeout(limited: GunicornServer, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=20, interval=0.05, stall_at=5)
    record = chat(limited)
    assert record.transport_error is None and record.kinds == ["start"] + ["token"] * 5 + ["error"], record.kinds
    assert record.text == answer_text(5)
    error = record.terminal.json()["error"]  # type: ignore[union-attr]
    assert error["type"] == "upstream_timeout" and error["retryable"] is True and "mid-answer" in error["message"]
    last_token = max(t for t, event in record.events if event.event == "token")
    assert LIMIT - 0.2 <= arrival(record, "error") - last_token <= LIMIT + MARGIN
    (request,) = upstream.wait_for_requests(1, timeout=10)
    assert request.stalled_at is not None and request.client_closed_at is not None  # the app closed the silent call
    assert request.client_closed_at - request.stalled_at <= LIMIT + MARGIN
    assert len(upstream.requests) == 1  # output was sent: no retry


def test_negative_control_without_the_limit_the_silent_stream_stays_open(unlimited: GunicornServer, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=20, interval=0.05, stall_at=5)
    record = still_open(unlimited)
    assert record.transport_error is None and record.terminal is None
    assert record.kinds == ["start"] + ["token"] * 5 and record.duration >= STILL_OPEN_AFTER
    assert len(record.comments) >= 3  # heartbeats: the stream was alive, waiting on the silent provider
    (request,) = upstream.wait_for_requests(1, timeout=10)  # closed only because the client left
    assert request.client_closed_at is not None and request.stalled_at is not None
    assert request.client_closed_at - request.stalled_at >= STILL_OPEN_AFTER - 0.5


def test_silence_before_the_first_token_is_retried_once_then_ends(limited: GunicornServer, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=5, stall_at=0)
    record = chat(limited)
    assert record.transport_error is None and record.kinds == ["start", "error"], record.kinds
    error = record.terminal.json()["error"]  # type: ignore[union-attr]
    assert error["type"] == "upstream_timeout" and error["retryable"] is True and "start answering" in error["message"]
    assert 2 * LIMIT - 0.2 <= arrival(record, "error") - arrival(record, "start") <= 2 * LIMIT + 2 * MARGIN
    first, second = upstream.wait_for_requests(2, timeout=10)
    assert len(upstream.requests) == 2  # one retry, no more
    assert first.client_closed_at is not None and first.client_closed_at <= second.started + 0.5  # the old call closed first
    assert second.client_closed_at is not None
    assert first.body["messages"] == second.body["messages"]


def test_a_retried_silence_answers_when_the_second_request_does(limited: GunicornServer, upstream: OpenAIUpstream) -> None:
    upstream.plan = lambda body, number: Script(tokens=5, stall_at=0) if number == 1 else Script(tokens=5)
    record = chat(limited)
    assert record.kinds == ["start"] + ["token"] * 5 + ["end"], record.kinds
    assert record.text == answer_text(5)
    first, second = upstream.wait_for_requests(2, timeout=10)
    assert first.client_closed_at is not None and first.tokens_sent == 0 and second.tokens_sent == 5
    assert LIMIT - 0.2 <= second.started - first.started <= LIMIT + MARGIN


def test_negative_control_without_the_limit_a_silent_start_is_never_retried(unlimited: GunicornServer, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=5, stall_at=0)
    record = still_open(unlimited)
    assert record.transport_error is None and record.kinds == ["start"] and record.terminal is None
    upstream.wait_for_requests(1, timeout=10)
    assert len(upstream.requests) == 1
