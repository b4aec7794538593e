"""The Agent Server API through the Django and plain-WSGI adapters, as users run the example
(examples/agent_server.py): a real gunicorn gevent worker on loopback, driven by LangGraph's own
sync client (``langgraph_sdk.get_sync_client``).

Each adapter streams a run token by token (``metadata`` first, ``end`` last, the stream not
compressed even with Django's GZipMiddleware on), keeps the thread's state and history, stops a run
whose client leaves with ``on_disconnect="cancel"``, and answers an unknown thread with the 404 the
SDK raises as ``NotFoundError``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from langgraph_sdk import get_sync_client
from langgraph_sdk.client import SyncLangGraphClient
from langgraph_sdk.errors import NotFoundError

from tests.support.servers import ROOT, GunicornServer, clean_environ

pytestmark = pytest.mark.e2e

APPS = {
    "django": ("examples.agent_server:django_app()", {"DJANGO_SETTINGS_MODULE": "examples.agent_server"}),
    "wsgi": ("examples.agent_server:wsgi_app", {}),
}
TOKENS = 40
INTERVAL = 0.05  # each answer takes TOKENS * INTERVAL = 2 s
MAX_PARTS = 500  # no stream here has more events than this
STREAM_SECONDS = 30.0


@dataclass
class Served:
    name: str
    server: GunicornServer

    @property
    def api(self) -> str:
        return self.server.url + "/langgraph"


@pytest.fixture(scope="module", params=list(APPS))
def served(request: pytest.FixtureRequest, artifacts: Path) -> Iterator[Served]:
    app, extra = APPS[request.param]
    env = {"EXAMPLE_TOKENS": str(TOKENS), "EXAMPLE_INTERVAL_SECONDS": str(INTERVAL), "EXAMPLE_HEARTBEAT_SECONDS": "1", **extra}
    server = GunicornServer(artifacts, env=env, app=app, name=f"agent-server-{request.param}", ready_path="/langgraph/ok")
    try:
        yield Served(request.param, server.start())
    finally:
        server.stop()


@dataclass
class Client:
    sdk: SyncLangGraphClient
    responses: list[httpx.Response]  # every response's status and headers, as the SDK received them


@pytest.fixture
def client(served: Served) -> Iterator[Client]:
    sdk = get_sync_client(url=served.api, api_key=None, timeout=httpx.Timeout(connect=5, read=20, write=10, pool=5))
    responses: list[httpx.Response] = []
    sdk.http.client.event_hooks["response"].append(responses.append)
    try:
        yield Client(sdk, responses)
    finally:
        sdk.close()


def user(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


@dataclass
class Part:
    at: float
    event: str
    data: Any


def read(parts: Iterator[Any], *, stop_after_tokens: int | None = None) -> list[Part]:
    """The stream's events with their arrival times; with ``stop_after_tokens``, the client leaves after that many."""
    seen: list[Part] = []
    deadline = time.monotonic() + STREAM_SECONDS
    try:
        for part in parts:
            seen.append(Part(time.monotonic(), part.event, part.data))
            assert len(seen) <= MAX_PARTS and time.monotonic() < deadline, [p.event for p in seen[-20:]]
            if stop_after_tokens is not None and len(token_parts(seen)) >= stop_after_tokens:
                break
    finally:
        close = getattr(parts, "close", None)
        if close is not None:
            close()  # the SDK's generator closes its response: the connection goes
    return seen


def token_parts(parts: list[Part]) -> list[Part]:
    return [p for p in parts if p.event == "messages" and p.data[0].get("type") == "AIMessageChunk" and p.data[0].get("content")]


def wait_for_run(sdk: SyncLangGraphClient, thread_id: str, run_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """The run's record once it has ended (bounded), else the last one seen."""
    deadline = time.monotonic() + timeout
    run = sdk.runs.get(thread_id, run_id)
    while run["status"] in ("pending", "running") and time.monotonic() < deadline:
        time.sleep(0.05)
        run = sdk.runs.get(thread_id, run_id)
    return dict(run)


def test_a_run_streams_token_by_token_from_metadata_to_end(served: Served, client: Client) -> None:
    sdk = client.sdk
    thread_id = sdk.threads.create()["thread_id"]
    parts = read(sdk.runs.stream(thread_id, "agent", input=user("hello there"), stream_mode=["messages-tuple", "values"]))

    events = [p.event for p in parts]
    assert events[0] == "metadata", events[:5]
    run_id = parts[0].data["run_id"]
    uuid.UUID(run_id)
    assert events[-1] == "end", events[-5:]
    assert "values" in events and "error" not in events
    tokens = token_parts(parts)
    assert len(tokens) == TOKENS, f"{served.name}: {len(tokens)} token events"
    spread = tokens[-1].at - tokens[0].at
    assert spread > 0.5 * TOKENS * INTERVAL, f"{served.name}: the tokens arrived together ({spread:.2f} s)"
    text = "".join(p.data[0]["content"] for p in tokens)
    final = [p.data for p in parts if p.event == "values"][-1]
    assert final["messages"][-1]["type"] == "ai" and final["messages"][-1]["content"] == text

    (stream,) = [r for r in client.responses if r.headers.get("content-type", "").startswith("text/event-stream")]
    assert stream.status_code == 200 and "content-encoding" not in stream.headers, f"{served.name}: {dict(stream.headers)}"
    assert stream.headers["location"] == f"/threads/{thread_id}/runs/{run_id}/stream"

    assert wait_for_run(sdk, thread_id, run_id)["status"] == "success"
    state = sdk.threads.get_state(thread_id)
    assert [m["type"] for m in state["values"]["messages"]] == ["human", "ai"]
    assert state["values"]["messages"][-1]["content"] == text and state["next"] == []
    assert sdk.threads.get(thread_id)["status"] == "idle"


def test_wait_keeps_the_thread_and_its_history(served: Served, client: Client) -> None:
    sdk = client.sdk
    thread_id = sdk.threads.create()["thread_id"]
    first = sdk.runs.wait(thread_id, "agent", input=user("first question"))
    assert [m["type"] for m in first["messages"]] == ["human", "ai"]
    second = sdk.runs.wait(thread_id, "agent", input=user("second question"))
    assert [m["type"] for m in second["messages"]] == ["human", "ai", "human", "ai"]
    assert second["messages"][:2] == first["messages"]

    state = sdk.threads.get_state(thread_id)
    assert state["values"] == second
    history = sdk.threads.get_history(thread_id, limit=100)
    assert 4 <= len(history) <= 100
    assert history[0]["checkpoint"]["checkpoint_id"] == state["checkpoint"]["checkpoint_id"]
    counts = [len(h["values"].get("messages", [])) for h in history]
    assert counts == sorted(counts, reverse=True) and 2 in counts, counts
    at_first = next(h for h in history if len(h["values"].get("messages", [])) == 2 and not h["next"])
    earlier = sdk.threads.get_state(thread_id, checkpoint_id=at_first["checkpoint"]["checkpoint_id"])
    assert earlier["values"] == first

    runs = sdk.runs.list(thread_id)
    assert len(runs) == 2 and {r["status"] for r in runs} == {"success"}


def test_a_client_that_leaves_with_on_disconnect_cancel_stops_the_run(served: Served, client: Client) -> None:
    sdk = client.sdk
    thread_id = sdk.threads.create()["thread_id"]
    parts = read(
        sdk.runs.stream(thread_id, "agent", input=user("I will leave early"), stream_mode=["messages-tuple"], on_disconnect="cancel"),
        stop_after_tokens=3,
    )
    left_at = time.monotonic()
    assert parts[0].event == "metadata" and parts[-1].event == "messages"
    run_id = parts[0].data["run_id"]

    run = wait_for_run(sdk, thread_id, run_id)
    stopped_after = time.monotonic() - left_at
    assert run["status"] == "interrupted", f"{served.name}: {run}"
    assert stopped_after < TOKENS * INTERVAL, f"{served.name}: the run went on for {stopped_after:.2f} s"
    # The log ends cancelled: a reader that joins now gets everything up to the cut, then the error that says so.
    replay = read(sdk.runs.join_stream(thread_id, run_id))
    assert replay[0].event == "metadata" and replay[-1].event == "error", [p.event for p in replay[-3:]]
    assert len(token_parts(replay)) < TOKENS
    assert "end" not in [p.event for p in replay]
    # Nothing answered the question: the thread holds no AI message, and takes the next run.
    state = sdk.threads.get_state(thread_id)
    assert "ai" not in [m["type"] for m in (state["values"] or {}).get("messages", [])]
    assert sdk.threads.get(thread_id)["status"] != "busy"
    again = sdk.runs.wait(thread_id, "agent", input=user("and now the whole answer"))
    assert again["messages"][-1]["type"] == "ai"


def test_an_unknown_thread_is_the_sdks_not_found_error(served: Served, client: Client) -> None:
    sdk = client.sdk
    unknown = str(uuid.uuid4())
    with pytest.raises(NotFoundError):
        sdk.threads.get(unknown)
    with pytest.raises(NotFoundError):
        sdk.threads.get_state(unknown)
    with pytest.raises(NotFoundError):
        read(sdk.runs.stream(unknown, "agent", input=user("anyone?"), stream_mode=["messages-tuple"]))
    with pytest.raises(httpx.HTTPStatusError) as waited:  # runs.wait raises httpx's own error, not the typed one (the SDK's choice)
        sdk.runs.wait(unknown, "agent", input=user("anyone?"))
    assert waited.value.response.status_code == 404
    statuses = [r.status_code for r in client.responses]
    assert statuses == [404] * 4, statuses
    assert all(r.headers["content-type"].startswith("application/json") for r in client.responses)


def test_the_adapter_reads_a_bounded_body_and_the_server_refuses_the_rest(served: Served) -> None:
    big = b'{"metadata": {"pad": "' + b"x" * 2_000_000 + b'"}}'
    response = httpx.post(served.api + "/threads", content=big, headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 413 and "detail" in response.json(), response.text[:300]
    response = httpx.post(served.api + "/threads", json={"metadata": {"kind": "small"}}, params={"ignored": ["a", "b"]}, timeout=10)
    assert response.status_code == 200 and response.json()["metadata"] == {"kind": "small"}
    response = httpx.get(served.server.url + "/elsewhere", timeout=10)
    assert response.status_code == 404


@pytest.mark.parametrize("adapter", list(APPS))
@pytest.mark.parametrize("close", [True, False], ids=["closed", "negative-control-not-closed"])
def test_a_stream_closed_before_its_first_byte_gives_back_its_slot(adapter: str, close: bool) -> None:
    """What a WSGI server does when the client is gone before the first byte: close the body unread.

    The adapter must hand the server the reply's StreamBody (its close() ends the run's log and
    gives back the admission slot); dropped unclosed, both stay taken. Its own process (Django's
    settings are process-wide), without gunicorn: no server drops a body before its first byte on cue.
    """
    command = [sys.executable, "-m", "tests.support.agent_server_close", adapter, *([] if close else ["--no-close"])]
    done = subprocess.run(command, cwd=ROOT, env=clean_environ(), capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    seen = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert seen["status"] == "200 OK" and seen["content_type"].startswith("text/event-stream") and seen["held_before"] == 1
    if close:
        assert seen["held_after"] == 0 and seen["log_finished"], seen
        assert seen["last"]["kind"] == "error" and seen["last"]["data"]["error"]["type"] == "cancelled", seen
    else:
        assert seen["held_after"] == 1 and not seen["log_finished"], seen
