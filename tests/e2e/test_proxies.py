"""Streaming through real proxies started from the shipped conf/ files.

For each of nginx, HAProxy, Caddy and Apache: the file passes its server's
own check as shipped; tokens arrive unbuffered; with the idle timeout cut
to 2 s, a 5 s model pause survives thanks to heartbeats; and the negative
control, the same with heartbeats off, is cut at the pause. nginx also
shows what its defaults do: buffering (when the app's X-Accel-Buffering
header is ignored) and HTTP/1.0 upstreams that make a cut look complete.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import openai_env
from tests.support.clients import StreamRecord, read_stream
from tests.support.openai_upstream import OpenAIUpstream, Script, answer_text
from tests.support.proxies import CONF, PROXIES, Apache, Nginx, Proxy, Variant
from tests.support.servers import GunicornServer

pytestmark = pytest.mark.e2e

SCRIPTED = {"WEBAPP_PROVIDER": "scripted"}


@pytest.fixture(scope="module")
def app_with_heartbeats(artifacts: Path) -> Iterator[GunicornServer]:
    server = GunicornServer(artifacts, env={**SCRIPTED, "WEBAPP_HEARTBEAT_SECONDS": "1"}, name="proxied-heartbeats")
    yield server.start()
    server.stop()


@pytest.fixture(scope="module")
def app_without_heartbeats(artifacts: Path) -> Iterator[GunicornServer]:
    server = GunicornServer(artifacts, env={**SCRIPTED, "WEBAPP_HEARTBEAT_SECONDS": "0"}, name="proxied-silent")
    yield server.start()
    server.stop()


@pytest.fixture
def proxies(tmp_path: Path) -> Iterator[list[Proxy]]:
    """Collects the proxies a test starts and stops them afterwards."""
    started: list[Proxy] = []
    yield started
    for proxy in started:
        proxy.stop()


def start_proxy(started: list[Proxy], kind: type[Proxy], tmp_path: Path, app: GunicornServer, variant: Variant | None = None) -> Proxy:
    proxy = kind(tmp_path, app.port, variant)
    started.append(proxy)
    return proxy.start()


def diagnostics(proxy: Proxy, query: str, **kwargs: object) -> StreamRecord:
    return read_stream("GET", f"{proxy.url}/api/diagnostics/stream?{query}", headers={"Accept-Encoding": "gzip"}, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", list(PROXIES))
def test_the_shipped_file_passes_its_servers_own_check(name: str, tmp_path: Path) -> None:
    proxy = PROXIES[name](tmp_path, app_port=None)
    checked = proxy.check()
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "127.0.0.1:8000" in (CONF / proxy.conf_file).read_text()


@pytest.mark.parametrize("name", list(PROXIES))
def test_tokens_pass_through_unbuffered(name: str, tmp_path: Path, proxies: list[Proxy], app_with_heartbeats: GunicornServer) -> None:
    proxy = start_proxy(proxies, PROXIES[name], tmp_path, app_with_heartbeats)
    record = diagnostics(proxy, "tokens=10&interval_ms=300")
    assert record.kinds == ["start"] + ["token"] * 10 + ["end"], proxy.log()
    times = record.token_times()
    assert times[-1] - times[0] > 2.0, f"tokens arrived together through {name}: {times}"
    assert "content-encoding" not in record.headers and "content-length" not in record.headers


@pytest.mark.parametrize("name", list(PROXIES))
def test_heartbeats_carry_a_stream_through_a_pause_longer_than_the_idle_timeout(
    name: str, tmp_path: Path, proxies: list[Proxy], app_with_heartbeats: GunicornServer
) -> None:
    proxy = start_proxy(proxies, PROXIES[name], tmp_path, app_with_heartbeats, Variant(idle_timeout_seconds=2))
    record = diagnostics(proxy, "tokens=4&interval_ms=50&pause_s=5&pause_at=2")
    assert record.kinds == ["start"] + ["token"] * 4 + ["end"], proxy.log()
    assert len(record.comments) >= 3, "heartbeats should have filled the pause"


@pytest.mark.parametrize("name", list(PROXIES))
def test_negative_control_without_heartbeats_the_idle_timeout_cuts_the_stream(
    name: str, tmp_path: Path, proxies: list[Proxy], app_without_heartbeats: GunicornServer
) -> None:
    proxy = start_proxy(proxies, PROXIES[name], tmp_path, app_without_heartbeats, Variant(idle_timeout_seconds=2))
    record = diagnostics(proxy, "tokens=4&interval_ms=50&pause_s=5&pause_at=2", timeout=20)
    assert "end" not in record.kinds, f"{name} should have cut the silent stream"
    assert record.kinds.count("token") == 2, "the cut comes at the pause"
    outcome = type(record.transport_error).__name__ if record.transport_error else "a clean end of the HTTP response"
    print(f"{name}: cut {record.duration:.1f}s into the stream (pause began at ~0.1s); client saw {outcome}")
    assert record.duration < 4.5, "the cut comes from the 2 s idle timeout, not from the end of the pause"


# -- nginx: what its defaults do ---------------------------------------------------------

IGNORE_ACCEL = "proxy_ignore_headers X-Accel-Buffering;"


NGINX_DEFAULTS = ["proxy_buffering off;", "proxy_http_version 1.1;"]  # without them: buffering on, HTTP/1.0


def test_nginx_defaults_are_rescued_by_the_apps_x_accel_buffering_header(
    tmp_path: Path, proxies: list[Proxy], app_with_heartbeats: GunicornServer
) -> None:
    proxy = start_proxy(proxies, Nginx, tmp_path, app_with_heartbeats, Variant(remove=NGINX_DEFAULTS))
    times = diagnostics(proxy, "tokens=10&interval_ms=300").token_times()
    assert times[-1] - times[0] > 2.0, "X-Accel-Buffering: no should make nginx stream anyway"


def test_negative_control_nginx_defaults_deliver_everything_at_the_end(
    tmp_path: Path, proxies: list[Proxy], app_with_heartbeats: GunicornServer
) -> None:
    """nginx defaults, and a layer that drops the app's X-Accel-Buffering header (modelled by ignoring it)."""
    buffering = Variant(remove=NGINX_DEFAULTS, add_after={"proxy_cache off;": IGNORE_ACCEL})
    proxy = start_proxy(proxies, Nginx, tmp_path, app_with_heartbeats, buffering)
    record = diagnostics(proxy, "tokens=10&interval_ms=300")
    assert record.kinds[-1] == "end"
    first_byte = record.chunks[0][0] - record.started
    last_byte = record.chunks[-1][0] - record.started
    print(f"buffered nginx: first byte {first_byte:.2f}s, last byte {last_byte:.2f}s")
    assert first_byte > 2.5 and last_byte - first_byte < 0.5, f"first byte {first_byte:.2f}s, last {last_byte:.2f}s"


@pytest.fixture(scope="module")
def app_on_openai(upstream_server: OpenAIUpstream, artifacts: Path) -> Iterator[GunicornServer]:
    server = GunicornServer(artifacts, env=openai_env(upstream_server), name="proxied-openai")
    yield server.start()
    server.stop()


def test_nginx_shipped_keeps_a_failed_text_stream_visibly_truncated(
    tmp_path: Path, proxies: list[Proxy], app_on_openai: GunicornServer, upstream: OpenAIUpstream
) -> None:
    proxy = start_proxy(proxies, Nginx, tmp_path, app_on_openai)
    upstream.script = Script(tokens=8, drop_at=3)
    record = read_stream("POST", proxy.url + "/api/chat/stream", json={"message": "x"})
    assert record.transport_error is not None, "the client must see the cut"
    assert record.body.decode() == answer_text(3)


def test_negative_control_nginx_over_http_1_0_makes_the_cut_look_complete(
    tmp_path: Path, proxies: list[Proxy], app_on_openai: GunicornServer, upstream: OpenAIUpstream
) -> None:
    http10 = Variant(remove=["proxy_http_version 1.1;"])
    proxy = start_proxy(proxies, Nginx, tmp_path, app_on_openai, http10)
    upstream.script = Script(tokens=8, drop_at=3)
    record = read_stream("POST", proxy.url + "/api/chat/stream", json={"message": "x"})
    assert record.transport_error is None, "over HTTP/1.0 the cut reaches the client as a clean end"
    assert record.body.decode() == answer_text(3)


# -- Apache: no-gzip on stream paths ------------------------------------------------------


def test_apache_does_not_compress_the_text_stream(tmp_path: Path, proxies: list[Proxy], app_with_heartbeats: GunicornServer) -> None:
    proxy = start_proxy(proxies, Apache, tmp_path, app_with_heartbeats)
    record = read_stream("POST", proxy.url + "/api/chat/stream", json={"message": "x"}, headers={"Accept-Encoding": "gzip"})
    assert record.status == 200 and "content-encoding" not in record.headers
    assert record.body.decode().startswith('You asked: "x".')


def test_negative_control_apache_without_no_gzip_compresses_the_text_stream(
    tmp_path: Path, proxies: list[Proxy], app_with_heartbeats: GunicornServer
) -> None:
    proxy = start_proxy(proxies, Apache, tmp_path, app_with_heartbeats, Variant(remove=["SetEnv no-gzip 1"]))
    record = read_stream("POST", proxy.url + "/api/chat/stream", json={"message": "x"}, headers={"Accept-Encoding": "gzip"})
    assert record.headers.get("content-encoding") == "gzip"


def test_a_missing_proxy_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.proxies import require_binary

    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y no-such-proxy"):
        require_binary("no-such-proxy-binary", "no-such-proxy")
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y no-such-proxy"):
        require_binary("no-such-proxy-binary", "no-such-proxy")
