"""Deploys that don't cut streams: SIGTERM and SIGHUP to gunicorn mid-stream, behind
the shipped nginx config, and the explicit server_shutdown error when a stream cannot
finish within graceful_timeout (with its negative control: the silent cut)."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import httpx
import pytest

from tests.support.clients import StreamRecord, read_stream
from tests.support.proxies import Nginx, Proxy, require_binary
from tests.support.servers import GunicornServer

pytestmark = pytest.mark.e2e

SCRIPTED = {"WEBAPP_PROVIDER": "scripted", "WEBAPP_HEARTBEAT_SECONDS": "1"}


@pytest.fixture
def behind_nginx(gunicorn: Callable[..., GunicornServer], tmp_path: Path) -> Iterator[Callable[..., tuple[GunicornServer, Proxy]]]:
    require_binary("nginx", "nginx")  # before any app starts
    proxies: list[Proxy] = []

    def start(env: dict[str, str] | None = None, args: list[str] | None = None) -> tuple[GunicornServer, Proxy]:
        app = gunicorn(env={**SCRIPTED, **(env or {})}, args=args)
        proxy = Nginx(tmp_path, app.port)
        proxies.append(proxy)
        return app, proxy.start()

    yield start
    for proxy in proxies:
        proxy.stop()


def stream_with_signal(proxy: Proxy, app: GunicornServer, signum: int, query: str, after_tokens: int = 2) -> StreamRecord:
    """Stream through the proxy and send ``signum`` to gunicorn's master after a few tokens."""
    sent = threading.Event()

    def send_once(record: StreamRecord) -> bool:
        if not sent.is_set() and record.kinds.count("token") >= after_tokens:
            app.signal(signum)
            sent.set()
        return False

    record = read_stream("GET", f"{proxy.url}/api/diagnostics/stream?{query}", stop_when=send_once, timeout=60)
    assert sent.is_set(), "the signal was never sent"
    return record


def test_sigterm_mid_stream_lets_the_stream_finish(behind_nginx: Callable[..., tuple[GunicornServer, Proxy]]) -> None:
    app, proxy = behind_nginx()
    record = stream_with_signal(proxy, app, signal.SIGTERM, "tokens=8&interval_ms=400")
    assert record.kinds == ["start"] + ["token"] * 8 + ["end"]
    assert record.transport_error is None
    assert "Handling signal: term" in app.log()


def test_sighup_rolling_restart_lets_the_stream_finish_and_keeps_serving(behind_nginx: Callable[..., tuple[GunicornServer, Proxy]]) -> None:
    app, proxy = behind_nginx()
    record = stream_with_signal(proxy, app, signal.SIGHUP, "tokens=8&interval_ms=400")
    assert record.kinds == ["start"] + ["token"] * 8 + ["end"]
    assert "Handling signal: hup" in app.log()
    after = read_stream("GET", f"{proxy.url}/api/diagnostics/stream?tokens=3&interval_ms=0")
    assert after.kinds[-1] == "end", "the new worker serves"


def test_a_stream_too_long_for_graceful_timeout_ends_with_server_shutdown(
    behind_nginx: Callable[..., tuple[GunicornServer, Proxy]],
) -> None:
    app, proxy = behind_nginx(args=["--graceful-timeout", "4"])
    signalled = time.monotonic()
    record = stream_with_signal(proxy, app, signal.SIGTERM, "tokens=40&interval_ms=300")
    error = record.terminal
    assert error is not None and error.event == "error", record.kinds
    assert error.json()["error"] == {
        "type": "server_shutdown",
        "message": "The server is restarting; retry to continue.",
        "retryable": True,
    }
    assert record.transport_error is None, "the stream ends cleanly, with its error event"
    assert "end" not in record.kinds and 2 <= record.kinds.count("token") < 40
    print(f"server_shutdown arrived {record.duration:.1f}s into the stream (graceful_timeout 4 s)")
    assert time.monotonic() - signalled < 30


def test_negative_control_without_the_notice_the_worker_cuts_the_stream_silently(
    behind_nginx: Callable[..., tuple[GunicornServer, Proxy]],
) -> None:
    app, proxy = behind_nginx(env={"WEBAPP_SHUTDOWN_NOTICE": "false"}, args=["--graceful-timeout", "4"])
    record = stream_with_signal(proxy, app, signal.SIGTERM, "tokens=40&interval_ms=300")
    assert record.terminal is None, f"no end and no error: a silent cut ({record.kinds[-3:]})"
    assert record.kinds.count("token") < 40
    print(f"silent cut {record.duration:.1f}s into the stream (graceful_timeout 4 s); client saw {record.transport_error!r}")
    assert 3.5 < record.duration < 15, "the cut comes at the graceful deadline"


def test_max_stream_seconds_ends_an_over_long_stream_with_an_explicit_error(
    behind_nginx: Callable[..., tuple[GunicornServer, Proxy]],
) -> None:
    app, proxy = behind_nginx(env={"WEBAPP_MAX_STREAM_SECONDS": "2"})
    record = read_stream("GET", f"{proxy.url}/api/diagnostics/stream?tokens=100&interval_ms=100")
    assert record.terminal is not None and record.terminal.json()["error"]["type"] == "timeout"
    assert record.transport_error is None and 1.5 < record.duration < 5


def test_preloading_the_app_under_gevent_is_refused_at_start_up(artifacts: Path) -> None:
    server = GunicornServer(artifacts, env=SCRIPTED, args=["--preload"], name="preload")
    assert server.run_to_exit() != 0
    assert "preload_app" in server.log() and "patch_all" in server.log()


def test_healthz_through_nginx_forwards_the_request(behind_nginx: Callable[..., tuple[GunicornServer, Proxy]]) -> None:
    _, proxy = behind_nginx()
    assert httpx.get(proxy.url + "/healthz").json()["worker"] == "gevent"
