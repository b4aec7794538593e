"""LangGraph's own Python clients against the Agent Server API at /langgraph, under real gunicorn gevent workers.

Real parts: ``langgraph_sdk`` (sync and async clients), ``RemoteGraph`` as
a node of another graph, the demo agent (create_agent +
HumanInTheLoopMiddleware) on the scripted model, SQLite or a real
PostgreSQL with a real Redis, and the shipped nginx. Each protection runs
beside its negative control: a stream rejoined on another instance only
with the shared store; heartbeats through nginx through a long tool pause
only when they are on.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest
from langgraph_sdk import get_client, get_sync_client
from langgraph_sdk.errors import ConflictError, NotFoundError, UnprocessableEntityError

from tests.support.postgres_server import PostgresServer, postgres_and_redis
from tests.support.proxies import Nginx, require_binary
from tests.support.redis_server import RedisServer
from tests.support.servers import GunicornServer

pytestmark = [pytest.mark.e2e]

SCRIPTED = {"WEBAPP_PROVIDER": "scripted", "WEBAPP_SCRIPTED_TTFT_MS": "0", "WEBAPP_SCRIPTED_INTERVAL_MS": "5", "GUNICORN_WORKERS": "1"}
EMAIL = "please send email to bob about lunch"
APPROVE = {"decisions": [{"type": "approve"}]}
USER = {"messages": [{"role": "user", "content": EMAIL}]}


def api(server: GunicornServer) -> str:
    return f"{server.url}/langgraph"


def parts(stream: Any) -> list[tuple[str, Any]]:
    return [(part.event, part.data) for part in stream]


def text_of(found: list[tuple[str, Any]]) -> str:
    """The assistant's streamed text, from ``messages`` events (``[chunk, metadata]``)."""
    out = []
    for event, data in found:
        if event == "messages" and data[0].get("type", "").startswith("AIMessage"):
            content = data[0].get("content")
            out.append(content if isinstance(content, str) else "")
    return "".join(out)


def emails_sent(server: GunicornServer) -> int:
    return sum(1 for line in server.log().splitlines() if '"message": "email_queued"' in line)


@pytest.fixture(scope="module")
def served(artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GunicornServer]:
    store = tmp_path_factory.mktemp("agent-server") / "threads.db"
    server = GunicornServer(artifacts, env={**SCRIPTED, "WEBAPP_THREAD_STORE": f"sqlite:///{store}"}, name="agent-server")
    try:
        server.start()
        yield server
    finally:
        server.stop()


def test_the_sync_sdk_pauses_for_approval_and_resumes_exactly_once(served: GunicornServer) -> None:
    client = get_sync_client(url=api(served))
    assistants = client.assistants.search(graph_id="agent")
    assert [a["graph_id"] for a in assistants] == ["agent"]
    assert client.assistants.get(assistants[0]["assistant_id"])["assistant_id"] == assistants[0]["assistant_id"]
    thread = client.threads.create(metadata={"user": "ada"})
    before = emails_sent(served)
    first = parts(client.runs.stream(thread["thread_id"], "agent", input=USER, stream_mode=["messages-tuple", "updates", "values"]))
    assert first[0][0] == "metadata" and set(first[0][1]) == {"run_id", "attempt"}
    assert first[-1][0] == "end"
    interrupts = [data["__interrupt__"] for event, data in first if event == "updates" and "__interrupt__" in data]
    assert interrupts and interrupts[0][0]["value"]["action_requests"][0]["name"] == "send_email"
    assert client.threads.get(thread["thread_id"])["status"] == "interrupted"
    state = client.threads.get_state(thread["thread_id"])
    assert state["next"] and state["interrupts"][0]["id"] == interrupts[0][0]["id"]
    assert emails_sent(served) == before

    resumed = parts(client.runs.stream(thread["thread_id"], "agent", command={"resume": APPROVE}, stream_mode="messages-tuple"))
    assert resumed[-1][0] == "end" and text_of(resumed)
    with pytest.raises(httpx.HTTPStatusError) as again:  # answered already: nothing to resume, and no second email
        client.runs.wait(thread["thread_id"], "agent", command={"resume": APPROVE})
    assert again.value.response.status_code == 409
    assert emails_sent(served) == before + 1
    final = client.threads.get(thread["thread_id"])
    assert final["status"] == "idle" and final["metadata"]["user"] == "ada"
    tools = [m for m in final["values"]["messages"] if m["type"] == "tool"]
    assert [m["name"] for m in tools] == ["send_email"] and tools[0]["content"] == "queued"
    history = client.threads.get_history(thread["thread_id"], limit=50)
    assert (
        len(history) >= 4
        and history[0]["checkpoint"]["checkpoint_id"] == client.threads.get_state(thread["thread_id"])["checkpoint"]["checkpoint_id"]
    )
    runs = client.runs.list(thread["thread_id"])
    assert [r["status"] for r in runs] == ["success", "success"]
    assert [t["thread_id"] for t in client.threads.search(metadata={"user": "ada"})] == [thread["thread_id"]]


def test_every_stream_mode_and_the_legacy_messages_events(served: GunicornServer) -> None:
    client = get_sync_client(url=api(served))
    thread = client.threads.create()
    modes = ["values", "updates", "messages-tuple", "messages", "custom", "debug", "tasks", "checkpoints"]
    found = parts(
        client.runs.stream(
            thread["thread_id"], "agent", input={"messages": [{"role": "user", "content": "what time is it"}]}, stream_mode=modes
        )
    )
    events = {event for event, _ in found}
    for wanted in (
        "metadata",
        "values",
        "updates",
        "messages",
        "messages/metadata",
        "messages/partial",
        "debug",
        "tasks",
        "checkpoints",
        "end",
    ):
        assert wanted in events, (wanted, sorted(events))
    partials = [data[0]["content"] for event, data in found if event == "messages/partial" and data[0]["type"].startswith("AI")]
    assert partials and all(later.startswith(earlier) for earlier, later in zip(partials, partials[1:]))  # the message so far, growing
    assert partials[-1] == text_of(found)
    with pytest.raises(UnprocessableEntityError) as refused:
        list(client.runs.stream(thread["thread_id"], "agent", input=USER, stream_mode="events"))
    assert "asyncio" in str(refused.value.response.json()["detail"])


def test_the_async_sdk_streams_waits_and_joins(served: GunicornServer) -> None:
    async def scenario() -> None:
        client = get_client(url=api(served))
        thread = await client.threads.create()
        found = [
            (p.event, p.data)
            async for p in client.runs.stream(
                thread["thread_id"], "agent", input={"messages": [{"role": "user", "content": "what is 6*7"}]}, stream_mode="messages-tuple"
            )
        ]
        assert found[0][0] == "metadata" and found[-1][0] == "end" and text_of(found)
        background = await client.runs.create(thread["thread_id"], "agent", input={"messages": [{"role": "user", "content": "and 2+2?"}]})
        assert background["status"] in ("pending", "running")
        joined = await client.runs.join(thread["thread_id"], background["run_id"])
        assert joined["messages"][-1]["type"] == "ai"
        assert (await client.runs.get(thread["thread_id"], background["run_id"]))["status"] == "success"
        values = await client.runs.wait(None, "agent", input={"messages": [{"role": "user", "content": "stateless hello"}]})
        assert values["messages"][0]["content"] == "stateless hello"

    asyncio.run(scenario())  # the test's own client; the server has no event loop


def test_multitask_reject_enqueue_interrupt_and_cancel(artifacts: Path, tmp_path: Path) -> None:
    slow = {**SCRIPTED, "WEBAPP_SCRIPTED_INTERVAL_MS": "40", "WEBAPP_THREAD_STORE": f"sqlite:///{tmp_path}/threads.db"}
    server = GunicornServer(artifacts, env=slow, name="agent-multitask")
    try:
        server.start()
        client = get_sync_client(url=api(server))
        thread = client.threads.create()["thread_id"]
        long = {"messages": [{"role": "user", "content": "tell me a long story about the sea"}]}
        first = client.runs.create(thread, "agent", input=long)
        with pytest.raises(ConflictError):
            client.runs.create(thread, "agent", input=long)  # reject, the default
        queued = client.runs.create(
            thread, "agent", input={"messages": [{"role": "user", "content": "queued"}]}, multitask_strategy="enqueue"
        )
        client.runs.join(thread, queued["run_id"])
        assert client.runs.get(thread, first["run_id"])["status"] == "success"
        assert client.runs.get(thread, queued["run_id"])["status"] == "success"
        humans = [m["content"] for m in client.threads.get_state(thread)["values"]["messages"] if m["type"] == "human"]
        assert humans[-2:] == [long["messages"][0]["content"], "queued"]  # one after the other, nothing lost

        running = client.runs.create(thread, "agent", input=long)
        time.sleep(0.5)
        replacing = client.runs.create(
            thread, "agent", input={"messages": [{"role": "user", "content": "instead"}]}, multitask_strategy="interrupt"
        )
        client.runs.join(thread, replacing["run_id"])
        assert client.runs.get(thread, running["run_id"])["status"] == "interrupted"
        assert client.runs.get(thread, replacing["run_id"])["status"] == "success"

        cancelled = client.runs.create(thread, "agent", input=long)
        time.sleep(0.5)
        client.runs.cancel(thread, cancelled["run_id"], wait=True)
        assert client.runs.get(thread, cancelled["run_id"])["status"] == "interrupted"
        assert client.threads.get(thread)["status"] != "busy"

        rolled = client.runs.create(thread, "agent", input={"messages": [{"role": "user", "content": "roll me back"}]})
        time.sleep(0.3)
        client.runs.cancel(thread, rolled["run_id"], action="rollback")
        humans = [m["content"] for m in client.threads.get_state(thread)["values"]["messages"] if m["type"] == "human"]
        assert "roll me back" not in humans
        with pytest.raises(NotFoundError):
            client.runs.get(thread, rolled["run_id"])
    finally:
        server.stop()


def test_remote_graph_runs_the_deployed_agent_as_a_node(served: GunicornServer) -> None:
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.pregel.remote import RemoteGraph

    remote = RemoteGraph("agent", url=api(served))
    outer = StateGraph(MessagesState)
    outer.add_node("remote_agent", remote)
    outer.add_edge(START, "remote_agent")
    result = outer.compile().invoke({"messages": [{"role": "user", "content": "what is 6*7"}]})
    assert result["messages"][-1].type == "ai" and result["messages"][-1].content
    chunks = list(remote.stream({"messages": [{"role": "user", "content": "hello"}]}, stream_mode="values"))
    assert chunks and chunks[-1]["messages"][-1]["type"] == "ai"


def test_bad_input_gets_the_sdks_error_before_any_model_call(served: GunicornServer) -> None:
    client = get_sync_client(url=api(served))
    thread = client.threads.create()["thread_id"]
    before = served.log().count('"surface": "agent"')
    bad = [
        {"input": USER, "stream_mode": "nope"},
        {"input": USER, "multitask_strategy": "sometimes"},
        {"input": USER, "config": {"configurable": {"thread_id": "someone-elses"}}},
        {"input": USER, "config": {"recursion_limit": 10**9}},
        {"input": USER, "interrupt_before": ["no_such_node"]},
        {"input": USER, "command": {"goto": "no_such_node"}},
        {"input": USER, "webhook": "http://169.254.169.254/"},
        {"input": USER, "metadata": {"x": "y" * 20000}},
        {"command": {"resume": APPROVE}},  # nothing pending
    ]
    for body in bad:
        response = httpx.post(f"{api(served)}/threads/{thread}/runs/stream", json={"assistant_id": "agent", **body}, timeout=10)
        assert 400 <= response.status_code < 500 and isinstance(response.json()["detail"], str), (body, response.text)
    for path in ("/threads/not-a-uuid/runs/stream", f"/threads/{thread}/runs/00000000-0000-0000-0000-000000000000"):
        assert httpx.request(
            "POST" if path.endswith("stream") else "GET", api(served) + path, json={"assistant_id": "agent"}, timeout=10
        ).status_code in (404, 422)
    with pytest.raises(NotFoundError):
        client.threads.get("00000000-0000-0000-0000-000000000000")
    assert served.log().count('"surface": "agent"') == before  # not one run started


def test_threads_and_runs_belong_to_their_key(artifacts: Path, tmp_path: Path) -> None:
    env = {
        **SCRIPTED,
        "WEBAPP_THREAD_STORE": f"sqlite:///{tmp_path}/threads.db",
        "WEBAPP_API_KEYS": "key-one-0123456789abcdef,key-two-0123456789abcdef",
    }
    server = GunicornServer(artifacts, env=env, name="agent-keys")
    try:
        server.start()
        one, two = (
            get_sync_client(url=api(server), api_key="key-one-0123456789abcdef"),
            get_sync_client(url=api(server), api_key="key-two-0123456789abcdef"),
        )
        thread = one.threads.create()["thread_id"]
        run = one.runs.wait(thread, "agent", input={"messages": [{"role": "user", "content": "hello"}]})
        assert run["messages"][-1]["type"] == "ai"
        for attempt in (
            lambda: two.threads.get(thread),
            lambda: two.threads.get_state(thread),
            lambda: two.runs.list(thread),
            lambda: two.runs.wait(thread, "agent", input=USER),
            lambda: two.threads.delete(thread),
        ):
            with pytest.raises(httpx.HTTPStatusError) as refused:  # NotFoundError, or (runs.wait) httpx's own
                attempt()
            assert refused.value.response.status_code == 404
        assert two.threads.search() == [] and len(one.threads.search()) == 1
        assert httpx.get(f"{api(server)}/threads/{thread}", timeout=10).status_code == 401  # no key
        assert get_sync_client(url=api(server), api_key=None, headers={"Authorization": "Bearer key-one-0123456789abcdef"}).threads.get(
            thread
        )
    finally:
        server.stop()


# -- across instances, deploys and proxies ----------------------------------------------------

STORY = {"messages": [{"role": "user", "content": "tell me a long story about the sea and the ships that sail on it"}]}


@pytest.fixture(scope="module")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PostgresServer, RedisServer]]:
    with postgres_and_redis(tmp_path_factory.mktemp("agent-server-dbs")) as databases:
        yield databases


def read_some(url: str, path: str, body: dict[str, Any], count: int) -> tuple[list[tuple[str, Any]], str, dict[str, str]]:
    """Start a run's stream, read ``count`` events (ids included), then drop the connection: (events, last id, headers)."""
    found: list[tuple[str, Any]] = []
    last_id, event = "", None
    with httpx.Client(timeout=30) as client, client.stream("POST", url + path, json=body) as response:
        assert response.status_code == 200, response.read()
        headers = dict(response.headers)
        for line in response.iter_lines():
            if line.startswith("id: "):
                last_id = line[4:]
            elif line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event is not None:
                found.append((event, json.loads(line[6:])))
                event = None
                if len(found) >= count:
                    break
    return found, last_id, headers


def final_answer(client: Any, thread_id: str) -> str:
    deadline = time.monotonic() + 30
    while client.threads.get(thread_id)["status"] == "busy" and time.monotonic() < deadline:
        time.sleep(0.1)
    return str(client.threads.get_state(thread_id)["values"]["messages"][-1]["content"])


def test_a_cut_stream_rejoins_on_another_instance_missing_and_repeating_nothing(
    gunicorn: Callable[..., GunicornServer],
    databases: tuple[PostgresServer, RedisServer],
) -> None:
    postgres, redis = databases
    env = {**SCRIPTED, "WEBAPP_SCRIPTED_INTERVAL_MS": "30", "WEBAPP_THREAD_STORE": postgres.url, "WEBAPP_STREAM_STORE": redis.url}
    first, second = gunicorn(env=env, name="agent-first"), gunicorn(env=env, name="agent-second")
    thread = get_sync_client(url=api(first)).threads.create()["thread_id"]
    body = {"assistant_id": "agent", "input": STORY, "stream_mode": "messages-tuple"}
    before, last_id, headers = read_some(api(first), f"/threads/{thread}/runs/stream", body, 8)
    run_id = before[0][1]["run_id"]
    assert headers["content-location"] == f"/threads/{thread}/runs/{run_id}" and headers["location"].endswith("/stream")
    other = get_sync_client(url=api(second))  # another host: only the shared stores connect them
    rest = parts(other.runs.join_stream(thread, run_id, last_event_id=last_id, stream_mode="messages-tuple"))
    assert rest[-1][0] == "end"
    streamed = text_of(before + rest)
    assert streamed and streamed == final_answer(other, thread)  # every token once, in order: the same text the thread kept
    assert other.runs.get(thread, run_id)["status"] == "success"


def test_negative_control_with_a_store_per_instance_the_other_instance_cannot_rejoin(
    gunicorn: Callable[..., GunicornServer],
    databases: tuple[PostgresServer, RedisServer],
) -> None:
    postgres, _ = databases
    env = {**SCRIPTED, "WEBAPP_SCRIPTED_INTERVAL_MS": "30", "WEBAPP_THREAD_STORE": postgres.url}  # streams kept in each worker's memory
    first, second = gunicorn(env=env, name="agent-alone-1"), gunicorn(env=env, name="agent-alone-2")
    thread = get_sync_client(url=api(first)).threads.create()["thread_id"]
    before, last_id, _ = read_some(
        api(first), f"/threads/{thread}/runs/stream", {"assistant_id": "agent", "input": STORY, "stream_mode": "messages-tuple"}, 8
    )
    run_id = before[0][1]["run_id"]
    response = httpx.get(f"{api(second)}/threads/{thread}/runs/{run_id}/stream", headers={"Last-Event-ID": last_id}, timeout=10)
    assert response.status_code == 404 and "shared store" in response.json()["detail"], response.text


def test_the_sdk_rides_through_a_deploy_and_gets_the_whole_answer(
    gunicorn: Callable[..., GunicornServer],
    databases: tuple[PostgresServer, RedisServer],
) -> None:
    # SIGHUP mid-stream: the old worker drains, tells its reader to move, and the SDK reconnects by the
    # stream's Location with Last-Event-ID to a new worker, which reads the run from Redis.
    postgres, redis = databases
    env = {
        **SCRIPTED,
        "WEBAPP_SCRIPTED_INTERVAL_MS": "30",
        "WEBAPP_THREAD_STORE": postgres.url,
        "WEBAPP_STREAM_STORE": redis.url,
        "GUNICORN_GRACEFUL_TIMEOUT": "30",
    }
    server = gunicorn(env=env, name="agent-deploy")
    client = get_sync_client(url=api(server))
    thread = client.threads.create()["thread_id"]
    found: list[tuple[str, Any]] = []
    for part in client.runs.stream(thread, "agent", input=STORY, stream_mode="messages-tuple"):
        found.append((part.event, part.data))
        if len(found) == 6:
            server.signal(signal.SIGHUP)
    assert found[-1][0] == "end", found[-3:]
    assert text_of(found) == final_answer(client, thread)
    pids = {json.loads(line)["pid"] for line in server.log().splitlines() if line.startswith("{") and '"surface": "agent"' in line}
    print("stream summaries from workers", pids)
    assert len(pids) >= 2, "the stream never moved: the deploy did not happen mid-stream"


@pytest.mark.parametrize("heartbeats", ["1", "0"], ids=["heartbeats", "negative-control-silent"])
def test_heartbeats_carry_a_run_through_a_tool_pause_past_nginx_idle_timeout(
    gunicorn: Callable[..., GunicornServer],
    tmp_path: Path,
    heartbeats: str,
) -> None:
    require_binary("nginx", "nginx")
    env = {
        **SCRIPTED,
        "WEBAPP_THREAD_STORE": f"sqlite:///{tmp_path}/threads.db",
        "WEBAPP_AGENT_SLOW_TOOL_SECONDS": "5",
        "WEBAPP_HEARTBEAT_SECONDS": heartbeats,
    }
    server = gunicorn(env=env, name=f"agent-nginx-{heartbeats}")
    from tests.support.proxies import Variant

    proxy = Nginx(tmp_path, server.port, Variant(idle_timeout_seconds=2)).start()
    try:
        client = get_sync_client(url=f"{proxy.url}/langgraph", timeout=httpx.Timeout(30))
        thread = client.threads.create()["thread_id"]
        body = {
            "assistant_id": "agent",
            "input": {"messages": [{"role": "user", "content": "slowly look up cats"}]},
            "stream_mode": ["updates", "messages-tuple"],
        }
        found, cut = [], None
        try:  # a raw read: the SDK would reconnect after the cut, and the control must show the cut itself
            with (
                httpx.Client(timeout=30) as raw,
                raw.stream("POST", f"{proxy.url}/langgraph/threads/{thread}/runs/stream", json=body) as response,
            ):
                event = None
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: ") and event:
                        found.append(event)
        except httpx.HTTPError as exc:
            cut = exc
        if heartbeats == "1":
            assert cut is None and found[-1] == "end", (cut, found[-5:])
            assert any(e == "updates" for e in found)
        else:
            assert "end" not in found, "nginx should have cut the silent stream during the 5 s tool"
            print("silent stream cut by nginx:", repr(cut) if cut else "a clean end of the response", "after", found[-3:])
    finally:
        proxy.stop()
