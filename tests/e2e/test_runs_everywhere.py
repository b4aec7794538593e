"""Issue 22, findings 1 and 12, under a real gunicorn gevent worker with the real ChatOpenAI.

A non-streaming answer is a run: the key's share holds, the deadline ends
it with a ``504 timeout``, and a client that leaves closes the upstream
call at once (the local OpenAI upstream sees the close). Resume readers are
capped per key, so one key cannot hold every connection of a worker.
Each with its negative control.
"""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import httpx
import pytest

from tests.conftest import openai_env
from tests.support.openai_upstream import OpenAIUpstream, Script
from tests.support.servers import GunicornServer

pytestmark = pytest.mark.e2e

KEY = "k-0123456789abcdef"
OTHER = "k-fedcba9876543210"
KEYS = f"{KEY},{OTHER}"
SLOW = Script(tokens=10, interval=0.5)  # about 4.5 s
COMPLETION = ("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
ANSWER = ("/api/chat", {"message": "hi"})


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def leave_after(server: GunicornServer, path: str, body: dict[str, object], seconds: float) -> float:
    """Ask for a non-streaming answer and leave (close the socket) after ``seconds``; returns when it left."""
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + path, json=body, timeout=httpx.Timeout(5.0, read=seconds))
    return time.monotonic()


@pytest.mark.parametrize(("path", "body"), [COMPLETION, ANSWER], ids=["chat.completions", "api.chat"])
def test_a_client_that_leaves_a_non_streaming_answer_closes_the_upstream_call(
    gunicorn: Callable[..., GunicornServer],
    upstream: OpenAIUpstream,
    path: str,
    body: dict[str, object],
) -> None:
    server = gunicorn(env=openai_env(upstream))
    upstream.script = SLOW
    left_at = leave_after(server, path, body, 1.0)
    (call,) = upstream.wait_for_requests(1, timeout=15)
    closed_at = call.client_closed_at or float("inf")
    print(f"upstream saw the close {closed_at - left_at:.2f}s after the client left; tokens sent: {call.tokens_sent}")
    assert closed_at - left_at < 2.0, "the upstream call should stop within the socket watch's second"
    assert call.tokens_sent < SLOW.tokens


def test_negative_control_without_the_watch_the_upstream_answers_for_nobody(
    gunicorn: Callable[..., GunicornServer],
    upstream: OpenAIUpstream,
) -> None:
    server = gunicorn(env=openai_env(upstream, WEBAPP_WATCH_DISCONNECT="false"))
    upstream.script = SLOW
    leave_after(server, *COMPLETION, 1.0)
    (call,) = upstream.wait_for_requests(1, timeout=15)
    assert call.client_closed_at is None and call.tokens_sent == SLOW.tokens


def twenty_at_once(server: GunicornServer) -> list[int]:
    path, body = COMPLETION

    def ask(_: int) -> int:
        return httpx.post(server.url + path, json=body, headers=auth(), timeout=30).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        return sorted(pool.map(ask, range(20)))


def test_twenty_non_streaming_answers_of_one_key_take_its_share_of_one(
    gunicorn: Callable[..., GunicornServer],
    upstream: OpenAIUpstream,
) -> None:
    server = gunicorn(env=openai_env(upstream, WEBAPP_API_KEYS=KEYS, WEBAPP_MAX_STREAMS_PER_KEY="1"))
    upstream.script = Script(tokens=10, interval=0.3)  # about 3 s: the twenty overlap
    statuses = twenty_at_once(server)
    assert statuses.count(429) >= 18 and set(statuses) <= {200, 429}, statuses
    assert len(upstream.requests) == statuses.count(200), "a refused answer makes no upstream call"


def test_negative_control_without_a_share_the_twenty_all_reach_the_upstream(
    gunicorn: Callable[..., GunicornServer],
    upstream: OpenAIUpstream,
) -> None:
    server = gunicorn(env=openai_env(upstream, WEBAPP_API_KEYS=KEYS, WEBAPP_MAX_STREAMS_PER_KEY="0"))
    upstream.script = Script(tokens=10, interval=0.1)
    assert twenty_at_once(server) == [200] * 20
    assert len(upstream.requests) == 20


@pytest.mark.parametrize(("path", "body"), [COMPLETION, ANSWER], ids=["chat.completions", "api.chat"])
def test_a_non_streaming_answer_ends_at_the_deadline(
    gunicorn: Callable[..., GunicornServer],
    upstream: OpenAIUpstream,
    path: str,
    body: dict[str, object],
) -> None:
    server = gunicorn(env=openai_env(upstream, WEBAPP_MAX_STREAM_SECONDS="1"))
    upstream.script = SLOW
    started = time.monotonic()
    response = httpx.post(server.url + path, json=body, timeout=30)
    took = time.monotonic() - started
    assert response.status_code == 504 and response.json()["error"]["type"] == "timeout", response.text
    assert took < 2.5, f"a 1 s deadline, and the answer took {took:.1f}s"
    (call,) = upstream.wait_for_requests(1, timeout=15)
    assert call.client_closed_at is not None and call.tokens_sent < SLOW.tokens, "the deadline stopped the upstream call"


# -- finding 12: readers ----------------------------------------------------------------


def open_reader(server: GunicornServer, key: str, event_id: str) -> tuple[int, socket.socket]:
    """A resume reader on a raw socket: its status, and the socket (left open while the status is 200)."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.sendall(f"GET /api/chat/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nLast-Event-ID: {event_id}\r\n\r\n".encode())
    head = b""
    while b"\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    if status != 200:
        sock.close()
    return status, sock


def first_event_id(server: GunicornServer) -> tuple[httpx.Response, httpx.Client, str]:
    client = httpx.Client(timeout=10)
    response = client.send(
        client.build_request("POST", server.url + "/api/chat/events", json={"message": "x"}, headers=auth()), stream=True
    )
    lines = response.iter_lines()
    event_id = next(line[4:] for line in lines if line.startswith("id: "))
    return response, client, event_id


def hold_readers(server: GunicornServer, count: int) -> tuple[list[int], bool]:
    """One key's run and ``count`` readers on it; then whether another key is still served (in 3 s)."""
    response, client, event_id = first_event_id(server)
    sockets: list[socket.socket] = []
    try:
        statuses = []
        for _ in range(count):
            status, sock = open_reader(server, KEY, event_id)
            statuses.append(status)
            if status == 200:
                sockets.append(sock)
        try:
            served = httpx.get(server.url + "/v1/models", headers=auth(OTHER), timeout=3).status_code == 200
        except httpx.TimeoutException:
            served = False
        return statuses, served
    finally:
        for sock in sockets:
            sock.close()
        response.close()
        client.close()


# 12 connections (gevent's server accepts one more, waiting for the pool): one key's run and 12 readers are all
# of them, as in the review (1 run, 59 readers, all 60).
TIGHT = {
    "GUNICORN_WORKER_CONNECTIONS": "12",
    "WEBAPP_API_KEYS": KEYS,
    "WEBAPP_SCRIPTED_INTERVAL_MS": "500",
    "WEBAPP_MAX_STREAMS_PER_KEY": "2",
}


def test_one_keys_readers_stop_at_its_cap_and_another_key_is_served(gunicorn: Callable[..., GunicornServer]) -> None:
    server = gunicorn(env=TIGHT)  # the default reader cap: twice the per-key streams, 4
    statuses, served = hold_readers(server, 12)
    assert statuses == [200] * 4 + [429] * 8, statuses
    assert served, "another key's request should be served"


def test_negative_control_with_the_cap_off_one_key_holds_every_connection(gunicorn: Callable[..., GunicornServer]) -> None:
    server = gunicorn(env={**TIGHT, "WEBAPP_MAX_READERS_PER_KEY": "0"})
    statuses, served = hold_readers(server, 12)
    assert statuses == [200] * 12, statuses
    assert not served, "with every connection held by one key, another key's request waits"
