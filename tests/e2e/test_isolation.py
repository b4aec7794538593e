"""Hardening II against real gunicorn processes, a real Redis and the real ChatOpenAI.

Two API keys on two instances sharing Redis cannot see each other's
streams, and the access logs carry no stream ids; runs hold their
admission slots through drops and reconnects; a run's deadline holds
across reconnects and for a reader that is always behind; an emoji split
across two upstream chunks arrives whole on every surface; slow request
bodies cannot hold the worker; a DELETE on one worker stops the run on the
other within a second; a lost Redis reply leaves the ids consistent.
"""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest
import redis

from tests.conftest import openai_env
from tests.support.clients import StreamRecord, read_stream
from tests.support.openai_upstream import OpenAIUpstream, Script
from tests.support.redis_server import RedisServer
from tests.support.servers import GunicornServer
from uncut.eventlog import MemoryEventLog
from uncut.redis_store import RedisStore

pytestmark = pytest.mark.e2e

KEY_A = "isolation-key-a-0123456789"
KEY_B = "isolation-key-b-0123456789"
A = {"Authorization": f"Bearer {KEY_A}"}
B = {"Authorization": f"Bearer {KEY_B}"}


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def servers(artifacts: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., GunicornServer]]:
    started: list[GunicornServer] = []

    def start(env: dict[str, str], args: list[str] | None = None, name: str = "isolation") -> GunicornServer:
        server = GunicornServer(artifacts, env=env, args=args or [], name=f"{name}-{request.node.name[:40]}")
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def stream_id_of(record: StreamRecord) -> str:
    return record.of_kind("start")[0].json()["stream_id"]


# -- 1. streams belong to their key -------------------------------------------------------------


def test_two_keys_on_two_instances_sharing_redis_cannot_see_each_others_streams(
    servers: Callable[..., GunicornServer], redis_server: RedisServer
) -> None:
    env = {
        "WEBAPP_PROVIDER": "scripted",
        "WEBAPP_API_KEYS": f"{KEY_A},{KEY_B}",
        "WEBAPP_STREAM_STORE": redis_server.url,
        "WEBAPP_SCRIPTED_INTERVAL_MS": "50",
        "WEBAPP_SCRIPTED_TTFT_MS": "0",
        "WEBAPP_RESUME_GRACE_SECONDS": "10",
    }
    one, two = servers(env, name="one"), servers(env, name="two")
    first = read_stream(
        "POST", one.url + "/api/chat/events", json={"message": "my secret plan"}, headers=A, stop_when=lambda r: r.kinds.count("token") >= 3
    )
    stream_id = stream_id_of(first)
    last = [e.id for _, e in first.events if e.id][-1]
    for server in (one, two):  # the producing instance and the other one, which reads Redis
        assert httpx.get(f"{server.url}/api/streams/{stream_id}", headers=B).status_code == 404
        assert read_stream("GET", f"{server.url}/api/streams/{stream_id}/events", headers=B).status == 404
        assert read_stream("GET", server.url + "/api/chat/events", headers={**B, "Last-Event-ID": last}).status == 404
        assert httpx.delete(f"{server.url}/api/streams/{stream_id}", headers=B).status_code == 404
    # The control: A resumes on the other instance and gets the rest of its answer.
    rest = read_stream("GET", two.url + "/api/chat/events", headers={**A, "Last-Event-ID": last})
    assert rest.status == 200 and rest.terminal is not None and rest.terminal.event == "end"
    for server in (one, two):
        access = [line for line in server.log().splitlines() if '"GET /api/' in line or '"DELETE /api/' in line]
        assert access and all(stream_id not in line for line in access), access
        assert any("/api/streams/<stream>" in line for line in access)


# -- 2. admission holds per run -----------------------------------------------------------------


def open_and_drop(url: str) -> int:
    """Open an SSE stream, read its first bytes, and leave; the status it got."""
    record = read_stream("POST", url + "/api/chat/events", json={"message": "x"}, stop_when=lambda r: "start" in r.kinds)
    return record.status


def test_clients_that_open_and_drop_cannot_start_more_runs_than_the_limit(
    servers: Callable[..., GunicornServer], upstream_server: OpenAIUpstream, upstream: OpenAIUpstream
) -> None:
    upstream.script = Script(tokens=100, interval=0.1)  # 10 s of answer: every run outlives the test's requests
    server = servers(
        openai_env(upstream_server, WEBAPP_MAX_CONCURRENT_STREAMS="3", WEBAPP_ON_DISCONNECT="continue", WEBAPP_RESUME_GRACE_SECONDS="10")
    )
    statuses = [open_and_drop(server.url) for _ in range(20)]
    posted = [httpx.post(server.url + "/api/streams", json={"message": "x"}).status_code for _ in range(5)]
    assert statuses.count(200) == 3 and statuses.count(503) == 17, statuses
    assert posted == [503] * 5
    time.sleep(0.5)
    assert len(upstream.requests) == 3, "one billed upstream call per admitted run, no more"


# -- 3. the deadline belongs to the run ---------------------------------------------------------


def test_reconnecting_cannot_carry_a_run_past_its_deadline(
    servers: Callable[..., GunicornServer], upstream_server: OpenAIUpstream, upstream: OpenAIUpstream
) -> None:
    upstream.script = Script(tokens=200, interval=0.05)  # 10 s of answer, 1 s allowed
    server = servers(
        openai_env(upstream_server, WEBAPP_MAX_STREAM_SECONDS="1", WEBAPP_ON_DISCONNECT="continue", WEBAPP_HEARTBEAT_SECONDS="1")
    )
    started = time.monotonic()
    part = read_stream(
        "POST", server.url + "/api/chat/events", json={"message": "x"}, timeout=10, stop_when=lambda r: time.monotonic() - started > 0.4
    )
    while part.terminal is None and time.monotonic() - started < 8:
        last = [e.id for _, e in part.events if e.id][-1]
        cut_at = time.monotonic() + 0.4  # reconnect every 0.4 s, as a flaky network would
        part = read_stream(
            "GET",
            server.url + "/api/chat/events",
            headers={"Last-Event-ID": last},
            timeout=10,
            stop_when=lambda r: time.monotonic() > cut_at,
        )
    ended = time.monotonic() - started
    assert part.terminal is not None and part.terminal.json()["error"]["type"] == "timeout"
    assert ended < 2.5, f"the run went on for {ended:.1f}s with a 1 s limit"
    (call,) = upstream.wait_for_requests(1)
    assert (call.client_closed_at or call.finished_at or 0) - call.started < 2.5  # and the upstream call stopped


def test_a_reader_that_is_always_behind_still_stops_at_the_deadline(
    servers: Callable[..., GunicornServer], upstream_server: OpenAIUpstream, upstream: OpenAIUpstream
) -> None:
    # An upstream that never stops (about 1,000 tokens/s, some 60 KB/s of SSE), read at about 50 KB/s:
    # the stream is always ahead of its reader, so the relay is never idle.
    upstream.script = Script(tokens=1_000_000, interval=0.001)
    server = servers(openai_env(upstream_server, WEBAPP_MAX_STREAM_SECONDS="1", WEBAPP_SEND_BUFFER_BYTES="4096"))
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    body = b'{"message": "x"}'
    head = b"POST /api/chat/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    sock.sendall(head % len(body) + body)
    started, received = time.monotonic(), b""
    try:
        # Read to the end of the chunked body, not just to "event: error": its data line may
        # arrive in a later read.
        while not received.endswith(b"0\r\n\r\n") and time.monotonic() - started < 20:
            time.sleep(0.02)
            piece = sock.recv(1024)
            if not piece:
                break
            received += piece
    finally:
        sock.close()
    (call,) = upstream.wait_for_requests(1, timeout=10)
    stopped_after = (call.client_closed_at or call.finished_at or 1e9) - call.started
    print(f"upstream stopped {stopped_after:.2f}s in; the reader saw the timeout {time.monotonic() - started:.1f}s in")
    assert stopped_after < 2.5, "the run must stop at its deadline, however far behind its reader is"
    assert b'"type":"timeout"' in received  # and the reader is told, after what was produced before it


def test_a_running_log_is_bounded_in_events(
    servers: Callable[..., GunicornServer], upstream_server: OpenAIUpstream, upstream: OpenAIUpstream
) -> None:
    upstream.script = Script(tokens=1_000_000, interval=0)
    server = servers(openai_env(upstream_server, WEBAPP_MAX_STREAM_EVENTS="2000"))
    record = read_stream("POST", server.url + "/api/chat/events", json={"message": "x"}, timeout=30)
    assert record.terminal is not None and record.terminal.json()["error"]["type"] == "too_large"
    assert len(record.events) <= 2001


# -- 4. no text can break a stream ----------------------------------------------------------------


EMOJI = ("Hello ", "\ud83d", "\ude00", " world")


@pytest.mark.parametrize("surface", ["sse", "v1", "text"])
def test_an_emoji_split_across_two_upstream_chunks_arrives_whole(
    surface: str, servers: Callable[..., GunicornServer], upstream_server: OpenAIUpstream, upstream: OpenAIUpstream
) -> None:
    upstream.script = Script(tokens=len(EMOJI), texts=EMOJI)
    server = servers(openai_env(upstream_server))
    if surface == "sse":
        record = read_stream("POST", server.url + "/api/chat/events", json={"message": "x"})
        assert record.text == "Hello \U0001f600 world" and record.terminal.event == "end"  # type: ignore[union-attr]
        resumed = read_stream("GET", server.url + "/api/chat/events", headers={"Last-Event-ID": f"{stream_id_of(record)}:0"})
        assert resumed.text == "Hello \U0001f600 world"  # and every resume still works
    elif surface == "v1":
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]}
        record = read_stream("POST", server.url + "/v1/chat/completions", json=body)
        frames = [json.loads(f[6:]) for f in record.body.decode().split("\n\n") if f.startswith("data: {")]
        assert "".join(f["choices"][0]["delta"].get("content") or "" for f in frames if f.get("choices")) == "Hello \U0001f600 world"
        assert record.body.endswith(b"data: [DONE]\n\n")
    else:
        record = read_stream("POST", server.url + "/api/chat/stream", json={"message": "x"})
        assert record.transport_error is None and record.body.decode() == "Hello \U0001f600 world"


# -- 5. slow request bodies --------------------------------------------------------------------------


def slow_body(port: int) -> socket.socket:
    """Headers announcing 100 bytes of body, then 10 of them, then nothing."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b'POST /api/chat/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"message"')
    return sock


@pytest.mark.parametrize("body_timeout", ["1", "0"], ids=["deadline", "negative-control-no-deadline"])
def test_slow_bodies_cannot_hold_every_connection(body_timeout: str, servers: Callable[..., GunicornServer]) -> None:
    server = servers({"WEBAPP_PROVIDER": "scripted", "WEBAPP_BODY_TIMEOUT_SECONDS": body_timeout}, args=["--worker-connections", "4"])
    time.sleep(0.5)  # readiness polls have left
    slow = [slow_body(server.port) for _ in range(4)]
    try:
        started = time.monotonic()
        try:
            healthy = httpx.get(server.url + "/healthz", timeout=4).status_code == 200
        except httpx.TimeoutException:
            healthy = False
        waited = time.monotonic() - started
        answers = []
        for sock in slow:
            sock.settimeout(0.5)
            try:
                answers.append(sock.recv(200))
            except (TimeoutError, OSError):
                answers.append(b"")
    finally:
        for sock in slow:
            sock.close()
    if body_timeout == "1":
        assert healthy and waited < 3.5, waited
        assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers
    else:
        assert not healthy, "without a body deadline four slow bodies hold every connection"


# -- 7. a DELETE on another worker stops the run at once ------------------------------------------------


def test_a_delete_on_another_instance_stops_the_run_during_a_model_pause(
    servers: Callable[..., GunicornServer], upstream_server: OpenAIUpstream, upstream: OpenAIUpstream, redis_server: RedisServer
) -> None:
    upstream.script = Script(tokens=10, interval=0.05, pause=10, pause_at=3)
    env = openai_env(
        upstream_server,
        WEBAPP_STREAM_STORE=redis_server.url,
        WEBAPP_ON_DISCONNECT="continue",
        WEBAPP_RESUME_GRACE_SECONDS="30",
        WEBAPP_HEARTBEAT_SECONDS="1",
    )
    redis.Redis.from_url(redis_server.url).flushall()  # this test's stream is then the only one
    producer, other = servers(env, name="producer"), servers(env, name="other")
    with ThreadPoolExecutor(1) as pool:
        reading = pool.submit(read_stream, "POST", producer.url + "/api/chat/events", json={"message": "x"}, timeout=30)
        deadline = time.monotonic() + 10
        while (not upstream.requests or upstream.requests[0].tokens_sent < 3) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # the model is in its pause
        stream_id = redis.Redis.from_url(redis_server.url).keys("webapp:stream:s_*:meta")[0].decode().split(":")[2]
        deleted_at = time.monotonic()
        assert httpx.delete(f"{other.url}/api/streams/{stream_id}").json()["status"] == "cancelled"
        record = reading.result(timeout=20)
    (call,) = upstream.wait_for_requests(1, timeout=15)
    closed_after = (call.client_closed_at or call.finished_at or 1e9) - deleted_at
    print(f"the producing worker closed the upstream call {closed_after:.2f}s after the DELETE on the other instance")
    assert closed_after < 1.0 and call.tokens_sent == 3
    assert record.terminal is not None and record.terminal.json()["error"]["type"] == "cancelled"
    assert record.duration < 5


# -- 8. a lost Redis reply ------------------------------------------------------------------------------


def test_a_lost_redis_reply_leaves_the_ids_consistent(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url)
    log = store.create("s_0123456789abcdef")
    assert isinstance(log, MemoryEventLog)
    log.append("start", {"stream_id": log.stream_id})
    log.append("token", {"text": "a"})
    script = store._append_script
    lost = {"left": 1}

    def runs_then_loses_the_reply(*args: Any, **kwargs: Any) -> Any:
        result = script(*args, **kwargs)  # Redis ran it...
        if lost["left"]:
            lost["left"] -= 1
            raise redis.ConnectionError("connection reset after the command ran")  # ...the answer never came
        return result

    store._append_script = runs_then_loses_the_reply  # type: ignore[method-assign]
    log.append("token", {"text": "b"})
    log.append("token", {"text": "c"})
    log.finish("end", {"finish_reason": "stop"})
    remote = [
        (int(entry_id.split(b"-")[0]), fields[b"k"].decode(), json.loads(fields[b"d"]))
        for entry_id, fields in store.client.xrange(store.keys(log.stream_id)[0])
    ]
    local = [(e.seq, e.kind, e.data) for e in log.read_after(-1, 0)]
    assert remote == local and [seq for seq, _, _ in remote] == [0, 1, 2, 3, 4]
    # The hazard the expected number removes: the same write retried blind lands twice, under two numbers.
    store.append(log.stream_id + "x", "start", {}, expected=0)
    store.append(log.stream_id + "x", "token", {"text": "d"})
    store.append(log.stream_id + "x", "token", {"text": "d"})
    assert store.client.xlen(store.keys(log.stream_id + "x")[0]) == 3
