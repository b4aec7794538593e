"""The Django and plain-WSGI adapters in their examples, as users run them: a real gunicorn gevent
worker behind the shipped nginx, the real ChatOpenAI against the local upstream.

Each streams token by token and cancels the run when its client leaves. The Django example has
GZipMiddleware on; the negative control is the same stream as a plain StreamingHttpResponse, which
the middleware compresses, and which then arrives all at once.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import openai_env
from tests.support.clients import StreamRecord, read_stream
from tests.support.node import run_ui_chat
from tests.support.openai_upstream import OpenAIUpstream, Script, answer_text
from tests.support.proxies import Nginx, Proxy, require_binary
from tests.support.servers import GunicornServer

pytestmark = pytest.mark.e2e

APPS = {
    "django": ("examples.django_app.wsgi:application", {"DJANGO_SETTINGS_MODULE": "tests.support.django_plain"}),
    "wsgi": ("examples.wsgi_app:app", {}),
}
GZIP = {"Accept-Encoding": "gzip, deflate"}


@pytest.fixture(scope="module", params=list(APPS))
def served(
    request: pytest.FixtureRequest, upstream_server: OpenAIUpstream, artifacts: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Proxy]]:
    app, extra = APPS[request.param]
    env = {**openai_env(upstream_server), "EXAMPLE_MODEL": "upstream-model", "EXAMPLE_HEARTBEAT_SECONDS": "1", **extra}
    require_binary("nginx", "nginx")  # before the app starts: a skip then leaves nothing running
    server = GunicornServer(artifacts, env=env, app=app, name=f"adapter-{request.param}")
    try:
        server.start()
        proxy = Nginx(tmp_path_factory.mktemp("nginx"), server.port)
        try:
            yield request.param, proxy.start()
        finally:
            proxy.stop()
    finally:
        server.stop()


def stream(proxy: Proxy, path: str = "/stream", **kwargs: object) -> StreamRecord:
    return read_stream("POST", proxy.url + path, json={"message": "hi"}, headers=GZIP, **kwargs)  # type: ignore[arg-type]


def test_tokens_arrive_one_by_one_through_nginx(served: tuple[str, Proxy], upstream: OpenAIUpstream) -> None:
    name, proxy = served
    upstream.script = Script(tokens=10, interval=0.2)
    record = stream(proxy)
    assert record.kinds == ["start"] + ["token"] * 10 + ["end"], record.body[:500]
    assert record.text == answer_text(10)
    assert "content-encoding" not in record.headers, f"{name}: the stream was compressed"
    times = record.token_times()
    assert times[-1] - times[0] > 1.0, f"{name}: tokens arrived together: {times}"


def test_a_client_that_leaves_stops_the_upstream_call(served: tuple[str, Proxy], upstream: OpenAIUpstream) -> None:
    name, proxy = served
    upstream.script = Script(tokens=200, interval=0.05)  # 10 s if nobody stops it
    stream(proxy, stop_when=lambda r: r.kinds.count("token") >= 3)
    left_at = time.monotonic()
    (call,) = upstream.wait_for_requests(1, timeout=20)
    closed_at = call.client_closed_at or call.finished_at or float("inf")
    assert closed_at - left_at < 3.0 and call.tokens_sent < 60, f"{name}: the run went on ({call.tokens_sent} tokens)"


@pytest.mark.parametrize("served", ["django"], indirect=True)
def test_negative_control_django_gzip_middleware_holds_a_plain_stream_until_the_end(
    served: tuple[str, Proxy], upstream: OpenAIUpstream
) -> None:
    _, proxy = served
    upstream.script = Script(tokens=10, interval=0.2)
    record = stream(proxy, "/plain")
    assert record.headers.get("content-encoding") == "gzip"
    assert record.kinds == ["start"] + ["token"] * 10 + ["end"]  # complete, once decompressed...
    times = record.token_times()
    assert times[-1] - times[0] < 0.3, f"...but all at once at the end: {times}"


def test_the_ai_sdk_reads_the_ui_message_stream_through_nginx(served: tuple[str, Proxy], upstream: OpenAIUpstream) -> None:
    name, proxy = served
    upstream.script = Script(tokens=12, interval=0.05)
    code, out = run_ui_chat("strict", proxy.url + "/ui/chat", env={"CHAT_ID": f"adapter-{name}"})
    assert code == 0 and out["text"] == answer_text(12), f"{name}: {out}"
    assert out["firstTextMs"] < out["endMs"] - 250, f"{name}: the text arrived all at once"
    code, none = run_ui_chat("resume", proxy.url + "/ui/chat", env={"CHAT_ID": "never-started"})
    assert code == 0 and none == {"resumed": False}
