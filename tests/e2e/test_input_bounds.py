"""Issue 22's input findings against a real gunicorn (and the shipped nginx): each with its negative control.

A body trickled a byte at a time meets its deadline per byte; a chunked
body over the cap is refused whole; with keys off a chat belongs to the
browser that started it; requests gunicorn itself refuses get JSON through
the shipped nginx, never gunicorn's HTML pages.
"""

from __future__ import annotations

import json
import select
import socket
import time
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

from tests.support.proxies import Nginx, Variant
from tests.support.servers import GunicornServer

pytestmark = pytest.mark.e2e

SCRIPTED = {"WEBAPP_PROVIDER": "scripted", "WEBAPP_SCRIPTED_TTFT_MS": "0", "WEBAPP_SCRIPTED_INTERVAL_MS": "5"}
OLD = "tests.support.old_inputs_wsgi:app"


def read_answer(sock: socket.socket, timeout: float) -> bytes:
    """Whatever the server sends until it closes or ``timeout`` passes."""
    got = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        try:
            data = sock.recv(65536)
        except OSError:
            break
        if not data:
            break
        got += data
    return got


# -- 4. a body's deadline holds per byte ---------------------------------------------------------------


def trickle(port: int, seconds: float) -> tuple[bytes, float]:
    """Headers announcing 100 bytes, then one byte every 0.5 s: the answer and when it came (or b"" after ``seconds``)."""
    sock = socket.create_connection(("127.0.0.1", port))
    try:
        sock.sendall(b"POST /api/chat/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")
        started = time.monotonic()
        for _ in range(int(seconds / 0.5)):  # bounded: at most seconds / 0.5 bytes
            try:
                sock.sendall(b" ")
            except OSError:
                pass  # closed after its answer
            ready, _, _ = select.select([sock], [], [], 0.5)
            if ready:
                return read_answer(sock, 2), time.monotonic() - started
        return b"", time.monotonic() - started
    finally:
        sock.close()


@pytest.mark.parametrize("app", ["wsgi:app", OLD], ids=["per-byte", "negative-control-per-read"])
def test_a_body_trickled_a_byte_at_a_time_gets_408_at_its_deadline(app: str, gunicorn: Callable[..., GunicornServer]) -> None:
    server = gunicorn(env={**SCRIPTED, "WEBAPP_BODY_TIMEOUT_SECONDS": "2"}, app=app, name="trickle")
    answer, waited = trickle(server.port, 7)
    if app == OLD:
        assert answer == b"", "with the deadline checked only between reads, a byte every 0.5 s is never late"
        return
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b'"request_timeout"' in answer
    assert 1.9 < waited < 3.5, waited


# -- 5. a chunked body over the cap is refused whole ---------------------------------------------------

PADDED = b" " * 65_536 + b'{"message": "the tail"}'  # valid JSON, past a 1 KiB cap; its tail alone is valid JSON too


def chunked_request(body: bytes, piece: int = 8192) -> bytes:
    head = (
        b"POST /api/chat/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + piece]), body[i : i + piece]) for i in range(0, len(body), piece))
    return head + chunks + b"0\r\n\r\n"


def send_raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        try:
            sock.sendall(request)
        except OSError:
            pass  # refused before it was all sent
        return read_answer(sock, 10)


@pytest.mark.parametrize("cap", ["1024", "131072"], ids=["over-the-cap", "negative-control-under-the-cap"])
def test_a_chunked_body_over_the_cap_gets_413_like_one_with_a_length(cap: str, gunicorn: Callable[..., GunicornServer]) -> None:
    server = gunicorn(env={**SCRIPTED, "WEBAPP_MAX_BODY_BYTES": cap}, name="chunked")
    chunked = send_raw(server.port, chunked_request(PADDED))
    with_length = send_raw(
        server.port,
        b"POST /api/chat/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(PADDED), PADDED),
    )
    if cap == "131072":  # the same bytes under the cap are a valid request, served: what the cap refuses is real
        assert chunked.startswith(b"HTTP/1.1 200") and b"event: end" in chunked, chunked[:300]
        assert with_length.startswith(b"HTTP/1.1 200"), with_length[:300]
        return
    assert with_length.startswith(b"HTTP/1.1 413"), with_length[:300]
    assert chunked.startswith(b"HTTP/1.1 413"), chunked[:300]
    assert b'"request_too_large"' in chunked and b"event:" not in chunked


# -- 3. with keys off, a chat belongs to the browser that started it -----------------------------------


def ui_body(text: str) -> dict[str, Any]:
    return {"id": "shared-chat", "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": text}]}]}


def ui_text(raw: bytes) -> str:
    frames = [json.loads(b[6:]) for b in raw.decode().split("\n\n") if b.startswith("data: {")]
    return "".join(f.get("delta", "") for f in frames if f["type"] == "text-delta")


@pytest.mark.parametrize("app", ["wsgi:app", OLD], ids=["owned", "negative-control-ownership-off"])
def test_with_keys_off_a_strangers_resume_gets_204_and_its_post_its_own_chat(app: str, gunicorn: Callable[..., GunicornServer]) -> None:
    server = gunicorn(env={**SCRIPTED, "WEBAPP_SCRIPTED_INTERVAL_MS": "50"}, app=app, name="chat-owner")
    resume = server.url + "/api/ui/chat/shared-chat/stream"
    with httpx.Client(timeout=20) as browser, httpx.Client(timeout=20) as stranger:
        with browser.stream("POST", server.url + "/api/ui/chat", json=ui_body("my secret question")) as cut:
            assert cut.status_code == 200
            next(cut.iter_raw())  # the first bytes, then the browser is gone: the chat stays resumable
        peek = stranger.get(resume)
        stranger.post(server.url + "/api/ui/chat", json=ui_body("the stranger's question"))
        mine = browser.get(resume)
    if app == OLD:
        assert peek.status_code == 200 and "my secret question" in ui_text(peek.content)
        assert mine.status_code == 204  # the stranger's post took the id over (and read it whole): the browser's answer is gone
        return
    assert peek.status_code == 204 and peek.content == b""
    assert mine.status_code == 200 and "my secret question" in ui_text(mine.content) and "stranger" not in ui_text(mine.content)
    cookie = cut.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    behind_tls = httpx.post(server.url + "/api/ui/chat", json=ui_body("hi"), headers={"X-Forwarded-Proto": "https"}, timeout=20)
    assert "Secure" in behind_tls.headers["set-cookie"]  # gunicorn trusts the loopback proxy's scheme


# -- 14. what gunicorn refuses itself answers JSON through the shipped nginx ---------------------------

REFUSED_BEFORE_THE_APP = {
    "line over nginx's buffer": (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "line over gunicorn's limit": (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "header over nginx's buffer": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
    "headers over gunicorn's count": (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(120)) + b"\r\n",
        431,
    ),
    "lowercase method": (b"get /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
}
WITHOUT_JSON_ERRORS = Variant(
    remove=[
        "        error_page 400 /_proxy_error/400;\n        error_page 414 /_proxy_error/414;\n"
        "        error_page 494 =431 /_proxy_error/431;\n",
        "proxy_intercept_errors on;",
    ]
)


def first_answer(port: int, request: bytes) -> tuple[int, bytes, bytes]:
    """Status, head and body of the one answer to ``request``."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request)
        head, _, body = read_answer(sock, 3).partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head, body


@pytest.mark.parametrize("variant", ["shipped", "negative-control-no-json-errors"])
def test_through_the_shipped_nginx_what_gunicorn_refuses_itself_is_json(
    variant: str, gunicorn: Callable[..., GunicornServer], tmp_path: Path
) -> None:
    server = gunicorn(env=SCRIPTED, name="refused")
    direct = {name: first_answer(server.port, request) for name, (request, _) in REFUSED_BEFORE_THE_APP.items()}
    assert all(b"text/html" in head for _, head, _ in direct.values())  # gunicorn alone: its own pages (documented)
    assert b"Request Line is too large (8192 &gt; 4094)" in direct["line over nginx's buffer"][2]
    proxy = Nginx(tmp_path, server.port, WITHOUT_JSON_ERRORS if variant != "shipped" else None).start()
    try:
        answers = {name: first_answer(proxy.port, request) for name, (request, _) in REFUSED_BEFORE_THE_APP.items()}
        app_error = first_answer(
            proxy.port,
            b"POST /api/chat/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1\r\nConnection: close\r\n\r\n{",
        )
    finally:
        proxy.stop()
    assert app_error[0] == 400 and json.loads(app_error[2])["error"]["type"] == "invalid_json"  # the app's own errors pass
    if variant != "shipped":
        assert all(b"text/html" in head for _, head, _ in answers.values()), answers
        assert b"Request Line is too large" in answers["line over gunicorn's limit"][2]  # gunicorn's page, naming its limit
        assert b"limit request headers fields" in answers["headers over gunicorn's count"][2]
        return
    for name, (status, head, body) in answers.items():
        assert status == REFUSED_BEFORE_THE_APP[name][1], (name, head)
        assert b"application/json" in head and b"html" not in body.lower(), (name, body)
        assert set(json.loads(body)["error"]) == {"type", "message"}, body
