"""The example "existing" Flask app with its one streaming route, under every server users run:
gunicorn gevent, gunicorn gthread, and the Flask development server, each with the
real ChatOpenAI (inside a prompt | model | parser chain) against the local upstream.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterator

import httpx
import pytest

from tests.conftest import openai_env
from tests.support.clients import read_stream
from tests.support.openai_upstream import OpenAIUpstream, Script, answer_text
from tests.support.servers import FlaskDevServer, GunicornServer, ServerProcess

pytestmark = pytest.mark.e2e

APP = "examples.existing_app.app:app"
SERVERS: dict[str, Callable[[Path, dict[str, str]], ServerProcess]] = {
    "gunicorn-gevent": lambda logs, env: GunicornServer(logs, env, app=APP, name="example-gevent", ready_path="/"),
    "gunicorn-gthread": lambda logs, env: GunicornServer(
        logs, env, args=["-k", "gthread", "--threads", "16"], app=APP, name="example-gthread", ready_path="/"
    ),
    "flask-dev-server": lambda logs, env: FlaskDevServer(logs, APP.replace(":app", ""), env, name="example-dev"),
}


@pytest.fixture(scope="module", params=list(SERVERS))
def example(request: pytest.FixtureRequest, upstream_server: OpenAIUpstream, artifacts: Path) -> Iterator[ServerProcess]:
    env = {**openai_env(upstream_server), "EXAMPLE_MODEL": "upstream-model", "FLASK_UNCUT_HEARTBEAT_SECONDS": "1"}
    server = SERVERS[request.param](artifacts, env)
    server.start()
    yield server
    server.stop()


def summarize(server: ServerProcess, **kwargs: object):
    return read_stream("POST", server.url + "/api/summarize/stream", json={"doc": "A long report."}, **kwargs)  # type: ignore[arg-type]


def test_the_existing_routes_still_work(example: ServerProcess, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=4)
    assert "Summarizer" in httpx.get(example.url + "/").text
    assert httpx.post(example.url + "/api/summarize", json={"doc": "x"}, timeout=30).json() == {"summary": answer_text(4)}


def test_the_streaming_route_delivers_tokens_incrementally_and_ends(example: ServerProcess, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=10, interval=0.2)
    record = summarize(example)
    assert record.kinds == ["start"] + ["token"] * 10 + ["end"]
    assert record.text == answer_text(10)
    times = record.token_times()
    assert times[-1] - times[0] > 1.0, "tokens must arrive spread out, not all at once"
    (call,) = upstream.wait_for_requests(1)
    assert call.body["messages"][-1]["content"] == "Summarize this document:\n\nA long report."


def test_a_client_that_leaves_stops_the_upstream_call(example: ServerProcess, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=200, interval=0.05)  # 10 s if nobody stops it
    summarize(example, stop_when=lambda r: r.kinds.count("token") >= 3)
    left_at = time.monotonic()
    (call,) = upstream.wait_for_requests(1, timeout=20)
    closed_at = call.client_closed_at or call.finished_at or float("inf")
    print(f"upstream saw the close {closed_at - left_at:.2f}s after the client left; tokens sent: {call.tokens_sent}")
    assert closed_at - left_at < 3.0
    assert call.tokens_sent < 60, "the producer was not cancelled"
