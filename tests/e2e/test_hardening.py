"""Hardening against a real gunicorn: malformed requests, overload, and clients that stop reading."""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from tests.support.clients import read_stream
from tests.support.servers import GunicornServer

pytestmark = pytest.mark.e2e

KEY = "hardening-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
JSON = {"Content-Type": "application/json", **AUTH}


@pytest.fixture(scope="module")
def hardened(artifacts: Path) -> Iterator[GunicornServer]:
    env = {"WEBAPP_PROVIDER": "scripted", "WEBAPP_API_KEYS": KEY, "WEBAPP_SCRIPTED_TTFT_MS": "0", "WEBAPP_SCRIPTED_INTERVAL_MS": "1"}
    server = GunicornServer(artifacts, env=env, name="hardened")
    yield server.start()
    server.stop()


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


USER = [{"role": "user", "content": "hi"}]
NESTED = b'{"message": ' + b"[" * 5000 + b"]" * 5000 + b"}"
MALFORMED: list[tuple[str, str, dict[str, str], bytes, int, str]] = [
    # bad JSON and bytes
    ("POST", "/api/chat", JSON, b"{not json", 400, "invalid_json"),
    ("POST", "/api/chat", JSON, b"", 400, "invalid_json"),
    ("POST", "/api/chat/events", JSON, b"\xff\xfe\xfd", 400, "invalid_json"),
    ("POST", "/api/chat/stream", JSON, b'{"message": "\\ud800"}', 400, "invalid_json"),
    ("POST", "/api/chat/events", JSON, NESTED, 400, "invalid_json"),
    ("POST", "/api/chat", JSON, b'{"message": NaN}', 400, "invalid_json"),
    ("POST", "/v1/chat/completions", JSON, b"[" * 100_000, 400, "invalid_request_error"),
    ("POST", "/v1/chat/completions", JSON, b"\xc3\x28", 400, "invalid_request_error"),
    # wrong types and nulls
    ("POST", "/api/chat", JSON, body(None), 400, "invalid_request"),
    ("POST", "/api/chat", JSON, body([1, 2]), 400, "invalid_request"),
    ("POST", "/api/chat", JSON, body({"message": None}), 400, "invalid_request"),
    ("POST", "/api/chat", JSON, body({"message": 12}), 400, "invalid_request"),
    ("POST", "/api/chat/events", JSON, body({"messages": None}), 400, "invalid_request"),
    ("POST", "/api/chat/events", JSON, body({"messages": [{"role": ["user"], "content": "x"}]}), 400, "invalid_request"),
    ("POST", "/api/chat/events", JSON, body({"messages": [{"role": "user", "content": None}]}), 400, "invalid_request"),
    ("POST", "/v1/chat/completions", JSON, body({"model": None, "messages": USER}), 400, "invalid_request_error"),
    (
        "POST",
        "/v1/chat/completions",
        JSON,
        body({"model": "m", "messages": [{"role": {"a": 1}, "content": "x"}]}),
        400,
        "invalid_request_error",
    ),
    ("POST", "/v1/chat/completions", JSON, body({"model": "m", "messages": USER, "stream": "true"}), 400, "invalid_request_error"),
    (
        "POST",
        "/v1/chat/completions",
        JSON,
        body({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
        400,
        "invalid_request_error",
    ),
    # huge strings and counts
    ("POST", "/api/chat", JSON, body({"message": "x" * 40_000}), 400, "invalid_request"),
    ("POST", "/api/chat/events", JSON, body({"messages": USER * 101}), 400, "invalid_request"),
    ("POST", "/api/chat/stream", JSON, b'{"message": "' + b"x" * 1_100_000 + b'"}', 413, "request_too_large"),
    (
        "POST",
        "/v1/chat/completions",
        JSON,
        body({"model": "m" * 10, "messages": [{"role": "user", "content": "y" * 40_000}]}),
        400,
        "invalid_request_error",
    ),
    # negative and huge numbers
    ("POST", "/v1/chat/completions", JSON, body({"model": "m", "messages": USER, "max_tokens": -1}), 400, "invalid_request_error"),
    ("POST", "/v1/chat/completions", JSON, body({"model": "m", "messages": USER, "max_tokens": 10**12}), 400, "invalid_request_error"),
    ("POST", "/v1/chat/completions", JSON, body({"model": "m", "messages": USER, "temperature": 1e308}), 400, "invalid_request_error"),
    ("POST", "/v1/chat/completions", JSON, body({"model": "m", "messages": USER, "n": 5}), 400, "invalid_request_error"),
    ("GET", "/api/diagnostics/stream?tokens=-1", AUTH, b"", 400, "invalid_request"),
    ("GET", "/api/diagnostics/stream?tokens=99999999999999999999", AUTH, b"", 400, "invalid_request"),
    ("GET", "/api/diagnostics/stream?pause_s=601", AUTH, b"", 400, "invalid_request"),
    ("GET", "/api/diagnostics/stream?interval_ms=1.5", AUTH, b"", 400, "invalid_request"),
    ("GET", "/api/diagnostics/stream?tokens=1001", AUTH, b"", 400, "invalid_request"),
    ("GET", "/api/diagnostics/stream?tokens=1000&interval_ms=1000", AUTH, b"", 400, "invalid_request"),
    # other sites' pages, and streams that are not yours
    ("POST", "/api/chat/events", {**JSON, "Sec-Fetch-Site": "cross-site"}, body({"message": "x"}), 403, "forbidden_origin"),
    ("GET", "/api/diagnostics/stream", {**AUTH, "Origin": "https://evil.example"}, b"", 403, "forbidden_origin"),
    (
        "OPTIONS",
        "/api/chat/events",
        {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        b"",
        403,
        "forbidden_origin",
    ),
    ("GET", "/api/streams/s_0123456789abcdef", AUTH, b"", 404, "stream_not_found"),
    ("GET", "/api/chat/events", {**AUTH, "Last-Event-ID": "s_0123456789abcdef:3"}, b"", 404, "stream_not_found"),
    # wrong content types and methods
    ("POST", "/api/chat", {**AUTH, "Content-Type": "text/plain"}, body({"message": "x"}), 415, "unsupported_media_type"),
    (
        "POST",
        "/api/chat/events",
        {**AUTH, "Content-Type": "application/x-www-form-urlencoded"},
        b"message=x",
        415,
        "unsupported_media_type",
    ),
    ("POST", "/v1/chat/completions", {**AUTH, "Content-Type": "multipart/form-data; boundary=x"}, b"--x--", 415, "unsupported_media_type"),
    ("GET", "/api/chat", AUTH, b"", 405, "method_not_allowed"),
    ("PUT", "/api/chat/events", AUTH, b"", 405, "method_not_allowed"),
    ("DELETE", "/v1/chat/completions", AUTH, b"", 405, "method_not_allowed"),
    ("POST", "/v1/models", AUTH, b"", 405, "method_not_allowed"),
    ("GET", "/no/such/route", AUTH, b"", 404, "not_found"),
    ("GET", "/api/chat/events", AUTH, b"", 400, "invalid_request"),
    # bad auth headers
    ("GET", "/v1/models", {}, b"", 401, "unauthorized"),
    ("GET", "/v1/models", {"Authorization": "Bearer"}, b"", 401, "unauthorized"),
    ("GET", "/v1/models", {"Authorization": f"Basic {KEY}"}, b"", 401, "unauthorized"),
    (
        "POST",
        "/api/chat/events",
        {"Authorization": "Bearer " + "z" * 4_000, "Content-Type": "application/json"},
        body({"message": "x"}),
        401,
        "unauthorized",
    ),
    (
        "POST",
        "/api/chat/events",
        {"Authorization": f"Bearer {KEY[:-1]}", "Content-Type": "application/json"},
        body({"message": "x"}),
        401,
        "unauthorized",
    ),
]


def test_the_table_is_large_enough() -> None:
    assert len(MALFORMED) >= 40


@pytest.mark.parametrize(("method", "path", "headers", "content", "status", "error_type"), MALFORMED)
def test_malformed_requests_get_their_json_error(
    hardened: GunicornServer, method: str, path: str, headers: dict[str, str], content: bytes, status: int, error_type: str
) -> None:
    response = httpx.request(method, hardened.url + path, headers=headers, content=content or None, timeout=30)
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error_type in (error["type"], error.get("code")) and error["message"]
    assert "Traceback" not in response.text


def test_the_server_keeps_serving_after_the_table(hardened: GunicornServer) -> None:
    for case in MALFORMED:  # the whole table again, back to back
        httpx.request(case[0], hardened.url + case[1], headers=case[2], content=case[3] or None, timeout=30)
    record = read_stream("POST", hardened.url + "/api/chat/events", json={"message": "still there?"}, headers=AUTH)
    assert record.kinds[0] == "start" and record.kinds[-1] == "end"
    assert "Traceback" not in hardened.log() and "unhandled error" not in hardened.log()


# -- overload ----------------------------------------------------------------------------------


def test_streams_beyond_the_limit_get_503_at_once_and_the_admitted_complete(gunicorn: Callable[..., GunicornServer]) -> None:
    server = gunicorn(env={"WEBAPP_PROVIDER": "scripted", "WEBAPP_MAX_CONCURRENT_STREAMS": "5"})
    url = server.url + "/api/diagnostics/stream?tokens=10&interval_ms=200"  # 2 s each

    def attempt(_: int) -> tuple[int, float, list[str], str | None]:
        started = time.monotonic()
        record = read_stream("GET", url)
        return record.status, time.monotonic() - started, record.kinds, record.headers.get("retry-after")

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(attempt, range(12)))
    admitted = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] == 503]
    assert len(admitted) == 5 and len(refused) == 7, [r[0] for r in results]
    assert all(kinds[-1] == "end" and kinds.count("token") == 10 for _, _, kinds, _ in admitted)
    # refused at once (a 2 s run frees a slot per 0.4 s: beyond the 250 ms budget), each told when its turn comes
    assert all(seconds < 1.0 and retry_after is not None and int(retry_after) >= 1 for _, seconds, _, retry_after in refused)
    assert read_stream("GET", url.replace("tokens=10", "tokens=2")).kinds[-1] == "end", "slots are freed afterwards"


# -- a client that stops reading -----------------------------------------------------------------


# Small kernel buffers on both sides, so the 1,000-token stream (about 60 KB) cannot fit in them.
STALL = {"WEBAPP_PROVIDER": "scripted", "WEBAPP_SEND_BUFFER_BYTES": "4096"}


def stalled_client(server: GunicornServer) -> socket.socket:
    """Ask for a 1,000-token stream, read 1 KiB of it, then never read again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(b"GET /api/diagnostics/stream?tokens=1000&interval_ms=0 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert sock.recv(1024).startswith(b"HTTP/1.1 200")
    return sock


def summaries(server: GunicornServer) -> list[dict[str, Any]]:
    """The stream_summary lines of the server's JSON log."""
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("message") == "stream_summary"]


def test_a_client_that_stops_reading_is_dropped_after_the_send_timeout(gunicorn: Callable[..., GunicornServer]) -> None:
    server = gunicorn(env={**STALL, "WEBAPP_SEND_TIMEOUT_SECONDS": "2"})
    sock = stalled_client(server)
    stalled_at = time.monotonic()
    try:
        while not summaries(server) and time.monotonic() - stalled_at < 15:
            time.sleep(0.1)
        dropped_after = time.monotonic() - stalled_at
    finally:
        sock.close()
    (summary,) = summaries(server)
    print(f"stalled client dropped after {dropped_after:.1f}s, outcome {summary['outcome']}", summary)
    assert summary["outcome"] == "slow_client" and dropped_after < 8
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_negative_control_without_a_send_timeout_the_stalled_stream_hangs_on(gunicorn: Callable[..., GunicornServer]) -> None:
    server = gunicorn(env={**STALL, "WEBAPP_SEND_TIMEOUT_SECONDS": "0", "WEBAPP_HEARTBEAT_SECONDS": "1"})
    sock = stalled_client(server)
    try:
        time.sleep(6)
        assert summaries(server) == [], "with no send timeout the stream is still held open"
        assert httpx.get(server.url + "/healthz").status_code == 200, "other requests still served (gevent)"
    finally:
        sock.close()
