"""End to end: a real gunicorn from conf/gunicorn.conf.py, the real ChatOpenAI,
and a real local server speaking the OpenAI streaming protocol.

Each protection is shown working and, with it switched off, shown failing:
the sync worker cuts a long stream, and without heartbeats or the socket
watch a dropped client keeps the upstream generating through a pause.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator

import httpx
import pytest

from tests.conftest import openai_env
from tests.support.clients import StreamRecord, read_stream
from tests.support.openai_upstream import OpenAIUpstream, Script, answer_text
from tests.support.servers import GunicornServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def served(upstream_server: OpenAIUpstream, artifacts: Path) -> Iterator[GunicornServer]:
    """One gevent worker, heartbeats every second, the cancel-on-disconnect policy, streaming from the upstream."""
    server = GunicornServer(
        artifacts, env=openai_env(upstream_server, WEBAPP_HEARTBEAT_SECONDS="1", WEBAPP_ON_DISCONNECT="cancel"), name="served"
    )
    server.start()
    yield server
    server.stop()


def chat_events(server: GunicornServer, message: str = "hello", **kwargs: object) -> StreamRecord:
    return read_stream("POST", server.url + "/api/chat/events", json={"message": message}, **kwargs)  # type: ignore[arg-type]


def test_healthz_names_the_gevent_worker_and_the_openai_provider(served: GunicornServer) -> None:
    assert httpx.get(served.url + "/healthz").json() == {
        "status": "ok",
        "provider": "openai",
        "model": "upstream-model",
        "worker": "gevent",
    }


def test_tokens_arrive_one_by_one_over_a_real_socket(served: GunicornServer, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=10, interval=0.2)
    record = chat_events(served)
    assert record.status == 200 and record.transport_error is None
    assert record.kinds == ["start"] + ["token"] * 10 + ["end"]
    assert record.text == answer_text(10)
    times = record.token_times()
    # The model takes ~1.8 s from first to last token; a buffered stream would deliver all at once.
    assert times[-1] - times[0] > 1.0
    assert len({round(t, 2) for t in times}) >= 8
    (request,) = upstream.wait_for_requests(1)
    assert request.body["stream"] is True and request.body["model"] == "upstream-model"


def test_end_event_carries_the_upstream_usage(served: GunicornServer, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=4)
    end = chat_events(served).terminal
    assert end is not None and end.event == "end"
    assert end.json()["finish_reason"] == "stop"
    assert end.json()["usage"]["output_tokens"] == 4


def test_text_stream_over_a_real_socket(served: GunicornServer, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=6, interval=0.05)
    record = read_stream("POST", served.url + "/api/chat/stream", json={"message": "hi"})
    assert record.transport_error is None and record.body.decode() == answer_text(6)
    assert record.headers["content-type"] == "text/plain; charset=utf-8"


def test_invoke_returns_the_whole_answer(served: GunicornServer, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=5)
    body = httpx.post(served.url + "/api/chat", json={"message": "hi"}, timeout=30).json()
    assert body["text"] == answer_text(5) and body["finish_reason"] == "stop"


@pytest.mark.alone  # compares its own timings: no other test may share the CPU
def test_fifty_concurrent_streams_share_one_worker(served: GunicornServer, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=20, interval=0.05)  # about 1 s per stream
    started = time.monotonic()
    single = chat_events(served)
    one = time.monotonic() - started
    assert single.kinds[-1] == "end"

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=50) as pool:
        records = list(pool.map(lambda i: chat_events(served, f"stream {i}"), range(50)))
    fifty = time.monotonic() - started
    assert all(r.kinds[-1] == "end" and r.text == answer_text(20) for r in records)
    assert fifty < 10 * one, f"50 streams took {fifty:.1f}s, one took {one:.1f}s"


@pytest.mark.parametrize(
    ("script", "error_type"),
    [
        (Script(tokens=8, drop_at=3), "upstream_unavailable"),
        (Script(fail_status=500), "upstream_error"),
        (Script(fail_status=429), "rate_limited"),
    ],
    ids=["dropped-mid-stream", "status-500", "status-429"],
)
def test_upstream_failure_is_an_error_event(served: GunicornServer, upstream: OpenAIUpstream, script: Script, error_type: str) -> None:
    upstream.script = script
    record = chat_events(served)
    assert record.transport_error is None, "the SSE transfer itself ends cleanly"
    assert record.kinds[-1] == "error" and record.kinds.count("end") == 0
    assert record.terminal is not None and record.terminal.json()["error"]["type"] == error_type
    assert record.text == answer_text(script.drop_at or 0)


def test_upstream_failure_truncates_the_text_stream(served: GunicornServer, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=8, drop_at=3)
    record = read_stream("POST", served.url + "/api/chat/stream", json={"message": "hi"})
    assert isinstance(record.transport_error, httpx.RemoteProtocolError), "no chunked terminator: a truncated transfer"
    assert record.body.decode() == answer_text(3)


# -- worker timeout: gevent versus sync --------------------------------------------------

LONG_STREAM = Script(tokens=10, interval=0.5)  # 4.5 s, more than --timeout 2


def test_a_stream_longer_than_the_worker_timeout_completes_under_gevent(
    gunicorn: Callable[..., GunicornServer], upstream: OpenAIUpstream
) -> None:
    server = gunicorn(env=openai_env(upstream), args=["--timeout", "2"])
    upstream.script = LONG_STREAM
    record = chat_events(server)
    assert record.kinds[-1] == "end" and record.text == answer_text(10)


def test_negative_control_the_sync_worker_cuts_the_same_stream(gunicorn: Callable[..., GunicornServer], upstream: OpenAIUpstream) -> None:
    server = gunicorn(env=openai_env(upstream, WEBAPP_ALLOW_SYNC_WORKER="true"), args=["--timeout", "2", "-k", "sync"])
    assert httpx.get(server.url + "/healthz").json()["worker"] == "sync"
    upstream.script = LONG_STREAM
    record = chat_events(server)
    assert "end" not in record.kinds, "the sync worker should have been killed mid-stream"
    assert record.transport_error is not None
    assert 0 < record.kinds.count("token") < 10
    assert "WORKER TIMEOUT" in server.log()


def test_the_sync_worker_is_refused_by_default(artifacts: Path, upstream: OpenAIUpstream) -> None:
    server = GunicornServer(artifacts, env=openai_env(upstream), args=["-k", "sync"], name="refuse-sync")
    assert server.run_to_exit() != 0
    assert "WEBAPP_ALLOW_SYNC_WORKER" in server.log()


def test_a_bad_setting_stops_gunicorn_at_start_up_naming_the_variable(artifacts: Path) -> None:
    server = GunicornServer(artifacts, env={"WEBAPP_HEARTBEAT_SECONDS": "often"}, name="bad-setting")
    assert server.run_to_exit() != 0
    assert "WEBAPP_HEARTBEAT_SECONDS='often': must be a number from 0 to 300" in server.log()


# -- a client that leaves during a model pause ------------------------------------------

PAUSE = 6.0
PAUSED_SCRIPT = Script(tokens=10, interval=0.02, pause=PAUSE, pause_at=3)


def leave_after_three_tokens(server: GunicornServer, upstream: OpenAIUpstream) -> tuple[float, float, int]:
    """Read three tokens, close the socket; return (seconds until upstream saw the close, tokens it sent)."""
    upstream.script = PAUSED_SCRIPT
    record = chat_events(server, stop_when=lambda r: r.kinds.count("token") >= 3)
    left_at = time.monotonic()
    assert record.kinds.count("token") == 3
    (request,) = upstream.wait_for_requests(1, timeout=PAUSE + 15)
    closed_at = request.client_closed_at or request.finished_at or float("inf")
    print(f"upstream saw the close {closed_at - left_at:.2f}s after the client left; tokens sent: {request.tokens_sent}")
    return left_at, closed_at - left_at, request.tokens_sent


def test_a_dropped_client_closes_the_upstream_call_at_once(served: GunicornServer, upstream: OpenAIUpstream) -> None:
    _, delay, tokens_sent = leave_after_three_tokens(served, upstream)
    assert delay < 2.5, f"upstream saw the close after {delay:.1f}s"
    assert tokens_sent == 3, "no token was generated after the client left"


def test_heartbeats_alone_bound_the_delay(gunicorn: Callable[..., GunicornServer], upstream: OpenAIUpstream) -> None:
    server = gunicorn(
        env=openai_env(upstream, WEBAPP_HEARTBEAT_SECONDS="1", WEBAPP_WATCH_DISCONNECT="false", WEBAPP_ON_DISCONNECT="cancel")
    )
    _, delay, tokens_sent = leave_after_three_tokens(server, upstream)
    assert delay < PAUSE - 1.5, f"a failed heartbeat write should end it within ~2 heartbeats, took {delay:.1f}s"
    assert tokens_sent == 3


def test_negative_control_without_heartbeats_or_watch_the_upstream_runs_on(
    gunicorn: Callable[..., GunicornServer], upstream: OpenAIUpstream
) -> None:
    server = gunicorn(
        env=openai_env(upstream, WEBAPP_HEARTBEAT_SECONDS="0", WEBAPP_WATCH_DISCONNECT="false", WEBAPP_ON_DISCONNECT="cancel")
    )
    _, delay, tokens_sent = leave_after_three_tokens(server, upstream)
    assert delay > PAUSE - 1.5, f"without protections the close should wait for the pause, took {delay:.1f}s"
    assert tokens_sent > 3, "the upstream went on generating for nobody"


# -- no event loop on the request path ---------------------------------------------------


def test_no_asyncio_event_loop_is_created_while_serving(
    gunicorn: Callable[..., GunicornServer], upstream: OpenAIUpstream, tmp_path: Path
) -> None:
    loop_log = tmp_path / "loops.log"
    env = openai_env(upstream, WEBAPP_TEST_LOOP_LOG=str(loop_log))
    server = gunicorn(env=env, app="tests.support.instrumented_wsgi:app")
    upstream.script = Script(tokens=5)
    assert chat_events(server).kinds[-1] == "end"
    assert read_stream("POST", server.url + "/api/chat/stream", json={"message": "x"}).body
    assert httpx.post(server.url + "/api/chat", json={"message": "x"}, timeout=30).status_code == 200
    assert read_stream("GET", server.url + "/api/diagnostics/stream?tokens=3&interval_ms=0").kinds[-1] == "end"
    assert not loop_log.exists() or loop_log.read_text() == ""


def test_negative_control_the_instrument_sees_asyncio_run_in_a_view(gunicorn: Callable[..., GunicornServer], tmp_path: Path) -> None:
    loop_log = tmp_path / "loops.log"
    server = gunicorn(env={"WEBAPP_TEST_LOOP_LOG": str(loop_log)}, app="tests.support.instrumented_wsgi:misuse_app")
    assert httpx.get(server.url + "/misuse").text == "done"
    assert "event loop created" in loop_log.read_text()
