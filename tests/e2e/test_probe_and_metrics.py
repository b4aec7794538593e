"""The probe's verdicts against real servers and proxies, and /metrics on a real 2-worker gunicorn."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from tests.support.clients import read_stream
from tests.support.proxies import Nginx, Proxy, Variant
from tests.support.servers import ROOT, GunicornServer, clean_environ

pytestmark = pytest.mark.e2e


def run_probe(*args: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "uncut.probe", *args], cwd=ROOT, capture_output=True, text=True, env=clean_environ(), timeout=90
    )
    return done.returncode, done.stdout + done.stderr


@pytest.fixture(scope="module")
def app_with_heartbeats(artifacts: Path) -> Iterator[GunicornServer]:
    server = GunicornServer(artifacts, env={"WEBAPP_PROVIDER": "scripted", "WEBAPP_HEARTBEAT_SECONDS": "1"}, name="probe-hb")
    yield server.start()
    server.stop()


@pytest.fixture(scope="module")
def app_without_heartbeats(artifacts: Path) -> Iterator[GunicornServer]:
    server = GunicornServer(artifacts, env={"WEBAPP_PROVIDER": "scripted", "WEBAPP_HEARTBEAT_SECONDS": "0"}, name="probe-silent")
    yield server.start()
    server.stop()


@pytest.fixture
def proxies() -> Iterator[list[Proxy]]:
    started: list[Proxy] = []
    yield started
    for proxy in started:
        proxy.stop()


def test_probe_says_ok_for_the_service_and_draws_the_timeline(app_with_heartbeats: GunicornServer, tmp_path: Path) -> None:
    png = tmp_path / "timeline.png"
    code, out = run_probe(app_with_heartbeats.url + "/api/diagnostics/stream?tokens=8&interval_ms=100", "--timeline", "--plot", str(png))
    assert code == 0 and out.strip().splitlines()[-1].startswith("OK:"), out
    assert "+   " in out and "token" in out, "the timeline lists each arrival"
    header = png.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (1000, 300)


def test_probe_reads_the_openai_surface_and_prints_a_json_report(app_with_heartbeats: GunicornServer) -> None:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True, "max_tokens": 4})
    code, out = run_probe(app_with_heartbeats.url + "/v1/chat/completions", "--json", body, "--json-report")
    report = json.loads(out)
    assert code == 0 and report["verdict"] == "OK" and report["ended_properly"] is True
    assert report["headers"]["x-accel-buffering"] == "no" and report["warnings"] == []


def test_probe_says_error_for_an_explicit_error_event(app_with_heartbeats: GunicornServer) -> None:
    code, out = run_probe(app_with_heartbeats.url + "/api/diagnostics/stream?tokens=5&interval_ms=10&fail_at=2")
    assert code == 6 and out.strip().splitlines()[-1].startswith("ERROR:") and "upstream_error" in out


def test_probe_says_buffered_through_a_buffering_nginx(app_with_heartbeats: GunicornServer, proxies: list[Proxy], tmp_path: Path) -> None:
    variant = Variant(
        remove=["proxy_buffering off;", "proxy_http_version 1.1;"],
        add_after={"proxy_cache off;": "proxy_ignore_headers X-Accel-Buffering;"},
    )
    proxy = Nginx(tmp_path, app_with_heartbeats.port, variant).start()
    proxies.append(proxy)
    code, out = run_probe(proxy.url + "/api/diagnostics/stream?tokens=10&interval_ms=200")
    assert code == 3 and out.strip().splitlines()[-1].startswith("BUFFERED:"), out


def test_probe_says_cut_off_at_the_proxy_idle_timeout(app_without_heartbeats: GunicornServer, proxies: list[Proxy], tmp_path: Path) -> None:
    proxy = Nginx(tmp_path, app_without_heartbeats.port, Variant(idle_timeout_seconds=2)).start()
    proxies.append(proxy)
    code, out = run_probe(proxy.url + "/api/diagnostics/stream?tokens=4&interval_ms=50&pause_s=5&pause_at=2", "--json-report")
    report = json.loads(out)
    assert code == 4 and report["verdict"] == "CUT OFF"
    assert 1.8 < report["duration"] < 3.5, f"cut at {report['duration']:.2f}s, expected about 2 s"
    assert report["arrivals"][-1]["kind"] == "token" and "last thing received was token" in report["reason"]


def test_probe_says_idle_risk_for_a_long_silence(app_without_heartbeats: GunicornServer) -> None:
    code, out = run_probe(
        app_without_heartbeats.url + "/api/diagnostics/stream?tokens=4&interval_ms=10&pause_s=2&pause_at=2", "--idle-threshold", "1.5"
    )
    assert code == 5 and out.strip().splitlines()[-1].startswith("IDLE-RISK:"), out


def test_probe_warns_about_hazardous_headers() -> None:
    from uncut.probe import header_warnings

    warnings = header_warnings(httpx.Headers({"content-length": "10", "content-encoding": "gzip"}), "HTTP/1.0")
    assert len(warnings) == 5 and any("gzip" in w for w in warnings) and any("HTTP/1.0" in w for w in warnings)


# -- metrics across two workers, and request ids in the logs --------------------------------


def scrape(server: GunicornServer) -> dict[str, float]:
    samples = {}
    for line in httpx.get(server.url + "/metrics", timeout=10).text.splitlines():
        if line.startswith("webapp_"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def finished(samples: dict[str, float], outcome: str) -> float:
    return sum(v for k, v in samples.items() if k.startswith("webapp_streams_finished_total{") and f'outcome="{outcome}"' in k)


def test_metrics_count_each_outcome_exactly_across_two_workers(gunicorn: Callable[..., GunicornServer]) -> None:
    server = gunicorn(
        env={"WEBAPP_PROVIDER": "scripted", "WEBAPP_HEARTBEAT_SECONDS": "1", "WEBAPP_ON_DISCONNECT": "cancel"}, args=["--workers", "2"]
    )
    base = server.url + "/api/diagnostics/stream"
    for _ in range(4):
        assert read_stream("GET", base + "?tokens=2&interval_ms=0").kinds[-1] == "end"
    for _ in range(3):
        assert read_stream("GET", base + "?tokens=5&interval_ms=0&fail_at=1").kinds[-1] == "error"
    for _ in range(2):
        cut = read_stream("GET", base + "?tokens=50&interval_ms=200", stop_when=lambda r: r.kinds.count("token") >= 1)
        assert cut.kinds[-1] == "token"
    deadline = time.monotonic() + 15
    while finished(samples := scrape(server), "client_disconnected") < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    scrapes = [samples] + [scrape(server) for _ in range(5)]  # each may reach either worker
    for seen in scrapes:
        assert finished(seen, "completed") == 4
        assert finished(seen, "upstream_error") == 3
        assert finished(seen, "client_disconnected") == 2
        assert seen['webapp_streams_started_total{surface="sse"}'] == 9
        assert seen['webapp_streams_active{surface="sse"}'] == 0
        assert seen["webapp_tokens_total"] >= 4 * 2 + 3 * 1 + 2
        assert seen["webapp_time_to_first_token_seconds_count"] == 9  # every stream produced a first token
    pids = {
        json.loads(line)["pid"]
        for line in server.log().splitlines()
        if line.startswith("{") and json.loads(line).get("message") == "stream_summary"
    }
    print(f"summaries came from worker pids {sorted(pids)}")


def test_request_ids_are_echoed_and_stamped_on_the_summary_line(app_with_heartbeats: GunicornServer) -> None:
    record = read_stream(
        "GET", app_with_heartbeats.url + "/api/diagnostics/stream?tokens=2&interval_ms=0", headers={"X-Request-ID": "trace-abc.123"}
    )
    assert record.headers["x-request-id"] == "trace-abc.123"
    generated = httpx.get(app_with_heartbeats.url + "/healthz").headers["x-request-id"]
    assert len(generated) == 32
    hostile = httpx.get(app_with_heartbeats.url + "/healthz", headers={"X-Request-ID": "a b\tc"}).headers["x-request-id"]
    assert hostile != "a b\tc" and len(hostile) == 32
    deadline = time.monotonic() + 5
    lines: list[dict[str, Any]] = []
    while not lines and time.monotonic() < deadline:
        lines = [json.loads(line) for line in app_with_heartbeats.log().splitlines() if line.startswith("{") and '"trace-abc.123"' in line]
        time.sleep(0.1)
    (summary,) = [line for line in lines if line["message"] == "stream_summary"]
    assert summary["request_id"] == "trace-abc.123" and summary["outcome"] == "completed" and summary["tokens"] == 2
