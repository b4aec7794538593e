"""Resumable streams end to end: cut connections lose nothing, one gunicorn or two behind
nginx with a real Redis, through a deploy, and with Redis itself gone mid-stream."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.conftest import openai_env
from tests.support.clients import StreamRecord, read_stream
from tests.support.openai_upstream import OpenAIUpstream, Script, answer_text
from tests.support.proxies import Nginx, Proxy, Variant, nginx_server, require_binary
from tests.support.redis_server import RedisServer
from tests.support.servers import GunicornServer
from uncut.scripted import script_tokens

pytestmark = pytest.mark.e2e

PROMPT = "Tell me about resumable streams"
SCRIPTED = {
    "WEBAPP_PROVIDER": "scripted",
    "WEBAPP_SCRIPTED_TTFT_MS": "0",
    "WEBAPP_SCRIPTED_INTERVAL_MS": "80",
    "WEBAPP_HEARTBEAT_SECONDS": "1",
}
FULL_ANSWER = "".join(script_tokens(PROMPT, None))


def tokens_at_least(count: int) -> Callable[[StreamRecord], bool]:
    return lambda record: record.kinds.count("token") >= count


def resume(base_url: str, last_event_id: str, **kwargs: object) -> StreamRecord:
    return read_stream("GET", base_url + "/api/chat/events", headers={"Last-Event-ID": last_event_id}, **kwargs)  # type: ignore[arg-type]


def last_id(record: StreamRecord) -> str:
    ids = [event.id for _, event in record.events if event.id]
    assert ids, "no event with an id was received"
    return ids[-1]


def follow_with_cuts(base_url: str, start: StreamRecord, cuts: int, per_part: int) -> tuple[str, list[int]]:
    """Resume after each cut; return the whole text and every sequence number received, in order."""
    parts = [start]
    for _ in range(cuts):
        parts.append(resume(base_url, last_id(parts[-1]), stop_when=tokens_at_least(per_part)))
        if parts[-1].terminal is not None:
            break
    if parts[-1].terminal is None:
        parts.append(resume(base_url, last_id(parts[-1])))
    assert parts[-1].terminal is not None and parts[-1].terminal.event == "end", parts[-1].kinds
    seqs = [int(event.id.split(":")[1]) for part in parts for _, event in part.events if event.id]
    return "".join(part.text for part in parts), seqs


# -- one gunicorn, memory store ------------------------------------------------------------


@pytest.fixture(scope="module")
def resumable(upstream_server: OpenAIUpstream, artifacts: Path) -> Iterator[GunicornServer]:
    server = GunicornServer(artifacts, env=openai_env(upstream_server, WEBAPP_HEARTBEAT_SECONDS="1"), name="resumable")
    yield server.start()
    server.stop()


def test_five_cuts_lose_nothing_and_start_no_new_generation(resumable: GunicornServer, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=40, interval=0.05)
    first = read_stream("POST", resumable.url + "/api/chat/events", json={"message": "hi"}, stop_when=tokens_at_least(4))
    text, seqs = follow_with_cuts(resumable.url, first, cuts=5, per_part=4)
    assert text == answer_text(40), "the concatenated parts are the uninterrupted answer"
    assert seqs == list(range(len(seqs))), "no duplicate and no gap"
    assert len(upstream.wait_for_requests(1)) == 1 and len(upstream.requests) == 1, "the producer ran once"


def test_a_stream_left_alone_keeps_generating_for_the_grace_period_then_stops(
    gunicorn: Callable[..., GunicornServer], upstream: OpenAIUpstream
) -> None:
    server = gunicorn(env=openai_env(upstream, WEBAPP_RESUME_GRACE_SECONDS="2"))
    upstream.script = Script(tokens=400, interval=0.05)  # 20 s if nobody stops it
    read_stream("POST", server.url + "/api/chat/events", json={"message": "hi"}, stop_when=tokens_at_least(3))
    left_at = time.monotonic()
    (call,) = upstream.wait_for_requests(1, timeout=20)
    stopped_after = (call.client_closed_at or call.finished_at or 0) - left_at
    print(f"abandoned stream stopped {stopped_after:.1f}s after its client left; {call.tokens_sent} tokens generated")
    assert 1.5 < stopped_after < 5, "it went on for the grace period, then stopped"
    assert 3 < call.tokens_sent < 400


# -- two gunicorns behind nginx, with a real Redis -----------------------------------------


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def two_behind_nginx(
    gunicorn: Callable[..., GunicornServer], tmp_path: Path, env: dict[str, str]
) -> tuple[GunicornServer, GunicornServer, Proxy]:
    require_binary("nginx", "nginx")  # before the servers start
    first, second = gunicorn(env=env), gunicorn(env=env)
    # One nginx worker so round robin strictly alternates: consecutive requests go to different instances.
    variant = Variant(
        add_after={"keepalive 32;": nginx_server(second.port)},
        remove=["worker_processes auto;"],
    )
    proxy = Nginx(tmp_path, first.port, variant)
    return first, second, proxy.start()


def served(server: GunicornServer, request_line: str) -> bool:
    return request_line in server.log()


def test_the_resume_lands_on_the_other_instance_and_completes(
    gunicorn: Callable[..., GunicornServer], tmp_path: Path, redis_server: RedisServer
) -> None:
    first, second, proxy = two_behind_nginx(gunicorn, tmp_path, {**SCRIPTED, "WEBAPP_STREAM_STORE": redis_server.url})
    try:
        start = read_stream("POST", proxy.url + "/api/chat/events", json={"message": PROMPT}, stop_when=tokens_at_least(5))
        text, seqs = follow_with_cuts(proxy.url, start, cuts=3, per_part=5)
    finally:
        proxy.stop()
    assert text == FULL_ANSWER and seqs == list(range(len(seqs)))
    starter = first if served(first, '"POST /api/chat/events') else second
    other = second if starter is first else first
    assert served(other, '"GET /api/chat/events'), "a resume was served by the instance that did not start the stream"


def test_negative_control_the_memory_store_cannot_resume_on_the_other_instance(
    gunicorn: Callable[..., GunicornServer], tmp_path: Path
) -> None:
    _, _, proxy = two_behind_nginx(gunicorn, tmp_path, SCRIPTED)
    try:
        start = read_stream("POST", proxy.url + "/api/chat/events", json={"message": PROMPT}, stop_when=tokens_at_least(5))
        again = resume(proxy.url, last_id(start))
    finally:
        proxy.stop()
    assert again.status == 404
    assert b"stream_not_found" in again.body and b"WEBAPP_STREAM_STORE=redis" in again.body


def test_sigterm_moves_the_client_to_the_other_instance_without_losing_anything(
    gunicorn: Callable[..., GunicornServer], tmp_path: Path, redis_server: RedisServer
) -> None:
    first, second, proxy = two_behind_nginx(gunicorn, tmp_path, {**SCRIPTED, "WEBAPP_STREAM_STORE": redis_server.url})
    try:
        # The stream starts on the first instance, directly; the resume goes through nginx.
        sent = []

        def terminate_after_five(record: StreamRecord) -> bool:
            if record.kinds.count("token") >= 5 and not sent:
                first.signal(signal.SIGTERM)
                sent.append(time.monotonic())
            return False

        start = read_stream("POST", first.url + "/api/chat/events", json={"message": PROMPT}, stop_when=terminate_after_five)
        assert start.terminal is None and start.transport_error is None, "the draining worker ended the response cleanly"
        assert any("reconnect with Last-Event-ID" in comment.text for _, comment in start.comments)
        moved_after = (start.ended or 0) - sent[0]
        rest = resume(proxy.url, last_id(start))
    finally:
        proxy.stop()
    print(f"the client was moved {moved_after:.2f}s after SIGTERM")
    assert moved_after < 2
    assert start.text + rest.text == FULL_ANSWER and rest.kinds[-1] == "end"
    assert served(second, '"GET /api/chat/events'), "the resume was served by the other instance"
    assert first.process is not None and first.process.wait(30) == 0, "the old instance finished its run, then exited"


def test_redis_gone_past_the_retry_bound_gives_an_explicit_error(
    gunicorn: Callable[..., GunicornServer], redis_server: RedisServer
) -> None:
    """A restart is lived through (tests/e2e/test_store_failover.py); a Redis that stays away is not a hang."""
    server = gunicorn(env={**SCRIPTED, "WEBAPP_STREAM_STORE": redis_server.url, "WEBAPP_STREAM_STORE_RETRY_SECONDS": "2"})
    stopped = []

    def stop_after_three(record: StreamRecord) -> bool:
        if record.kinds.count("token") >= 3 and not stopped:
            redis_server.stop()
            stopped.append(time.monotonic())
        return False

    record = read_stream("POST", server.url + "/api/chat/events", json={"message": PROMPT}, stop_when=stop_after_three, timeout=30)
    assert record.terminal is not None and record.terminal.event == "error"
    assert record.terminal.json()["error"] == {
        "type": "store_unavailable",
        "message": "The stream store is unavailable.",
        "retryable": True,
    }
    waited = (record.ended or 0) - stopped[0]
    print(f"the stream ended with store_unavailable {waited:.1f}s after Redis went away (retry bound 2 s)")
    assert 1.8 < waited < 4, "retried for the bound (once, not again for the terminal event), then said so"


def test_redis_down_at_start_up_is_a_clear_start_up_error(artifacts: Path) -> None:
    from tests.support.servers import free_port

    url = f"redis://:secret-password@127.0.0.1:{free_port()}/0"
    server = GunicornServer(artifacts, env={**SCRIPTED, "WEBAPP_STREAM_STORE": url}, name="redis-down")
    assert server.run_to_exit() != 0
    log = server.log()
    assert "WEBAPP_STREAM_STORE=redis://:***@127.0.0.1" in log and "cannot reach Redis" in log
    assert "secret-password" not in log
