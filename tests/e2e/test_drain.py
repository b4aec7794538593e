"""No run is lost to a deploy or a crash: two instances behind the shipped nginx, a real Redis.

A worker that drains on SIGTERM has moved its readers to the other
instance at once; it stays alive until the runs it is producing end, so
the resumed readers get every token (negative control: without the hold,
gunicorn exits with the runs half done, and the readers learn it only from
the lease). A worker killed with SIGKILL leaves no terminal event; its
lease runs out and a reader on the other instance ends the stream with
``producer_lost`` within seconds, not at WEBAPP_MAX_STREAM_SECONDS.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Callable, Iterator

import psutil
import pytest

from tests.conftest import openai_env
from tests.support.clients import StreamRecord, read_stream
from tests.support.openai_upstream import OpenAIUpstream, Script, answer_text
from tests.support.proxies import Nginx, Variant, nginx_server, require_binary
from tests.support.redis_server import RedisServer
from tests.support.servers import GunicornServer

pytestmark = pytest.mark.e2e


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def last_id(record: StreamRecord) -> str:
    return [e.id for _, e in record.events if e.id][-1]


def follow(url: str, first: StreamRecord, tries: int = 10) -> list[StreamRecord]:
    """Resume after every cut, as EventSource would, until a terminal event (or ``tries`` reconnects)."""
    parts = [first]
    while parts[-1].terminal is None and len(parts) <= tries:
        parts.append(read_stream("GET", url + "/api/chat/events", headers={"Last-Event-ID": last_id(parts[-1])}, timeout=30))
    return parts


@pytest.mark.parametrize("hold", ["true", "false"], ids=["held", "negative-control-no-hold"])
def test_a_draining_worker_keeps_producing_for_readers_that_moved_elsewhere(
    hold: str,
    gunicorn: Callable[..., GunicornServer],
    tmp_path: Path,
    redis_server: RedisServer,
    upstream_server: OpenAIUpstream,
    upstream: OpenAIUpstream,
) -> None:
    require_binary("nginx", "nginx")  # before the servers start
    upstream.script = Script(tokens=40, interval=0.1)  # 4 s of answer
    env = openai_env(
        upstream_server,
        WEBAPP_STREAM_STORE=redis_server.url,
        WEBAPP_HEARTBEAT_SECONDS="1",
        WEBAPP_ON_DISCONNECT="continue",
        GUNICORN_HOLD_FOR_RUNS=hold,
    )
    # keep-alive 1 s: an idle connection (nginx keeps one) would otherwise hold a draining worker for 75 s by
    # itself, and hide whether the worker waits for its runs.
    draining = gunicorn(env=env, args=["--graceful-timeout", "20", "--keep-alive", "1"])
    other = gunicorn(env=env)
    variant = Variant(add_after={"keepalive 32;": nginx_server(other.port)}, remove=["worker_processes auto;"])
    proxy = Nginx(tmp_path, draining.port, variant).start()
    try:
        first = read_stream(
            "POST", draining.url + "/api/chat/events", json={"message": "x"}, stop_when=lambda r: r.kinds.count("token") >= 5
        )
        draining.signal(signal.SIGTERM)  # its relays move readers at once; its run goes on
        parts = follow(proxy.url, first)
    finally:
        proxy.stop()
    text = "".join(part.text for part in parts)
    terminal = parts[-1].terminal
    assert terminal is not None, "every stream ends with an explicit event"
    if hold == "true":
        assert terminal.event == "end" and text == answer_text(40), (terminal, text)
    else:
        # gunicorn exited with the run half done; the lease ran out and a reader said so.
        assert terminal.json()["error"]["type"] == "producer_lost" and len(text) < len(answer_text(40))


def test_a_reader_elsewhere_learns_at_once_that_a_killed_worker_will_never_finish(
    gunicorn: Callable[..., GunicornServer],
    redis_server: RedisServer,
    upstream_server: OpenAIUpstream,
    upstream: OpenAIUpstream,
) -> None:
    upstream.script = Script(tokens=300, interval=0.1)  # 30 s of answer
    env = openai_env(
        upstream_server,
        WEBAPP_STREAM_STORE=redis_server.url,
        WEBAPP_HEARTBEAT_SECONDS="1",
        WEBAPP_ON_DISCONNECT="continue",
        WEBAPP_RESUME_GRACE_SECONDS="60",
    )
    producer, other = gunicorn(env=env), gunicorn(env=env)
    first = read_stream("POST", producer.url + "/api/chat/events", json={"message": "x"}, stop_when=lambda r: r.kinds.count("token") >= 3)
    assert producer.process is not None
    (worker,) = psutil.Process(producer.process.pid).children()
    killed_at = time.monotonic()
    worker.kill()  # SIGKILL: no drain, no terminal event, no goodbye
    resumed = read_stream("GET", other.url + "/api/chat/events", headers={"Last-Event-ID": last_id(first)}, timeout=30)
    noticed_after = time.monotonic() - killed_at
    print(f"a reader on the other instance got producer_lost {noticed_after:.1f}s after the kill")
    assert resumed.terminal is not None and resumed.terminal.json()["error"] == {
        "type": "producer_lost",
        "message": "The server producing this stream stopped; retry to start again.",
        "retryable": True,
    }
    assert noticed_after < 10
