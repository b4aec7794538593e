"""Threads under real gunicorn: a thread paused for approval continues exactly once, on any worker, after any restart.

Real parts: gunicorn gevent workers, the demo agent (create_agent +
HumanInTheLoopMiddleware) on the scripted model, SQLite (the embedded
default) or a real PostgreSQL started here, and a real Redis for the
streams. Each protection runs beside its negative control: a per-worker
store loses the thread on the other worker, and with the lease off two runs
on one thread lose a turn.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import psutil
import pytest

from tests.support.postgres_server import PostgresServer, postgres_and_redis
from tests.support.redis_server import RedisServer
from tests.support.servers import GunicornServer

pytestmark = [pytest.mark.e2e]

SCRIPTED = {"WEBAPP_PROVIDER": "scripted", "WEBAPP_SCRIPTED_TTFT_MS": "0", "WEBAPP_SCRIPTED_INTERVAL_MS": "5", "GUNICORN_WORKERS": "2"}
EMAIL = "please send email to bob about lunch"
APPROVE = {"decisions": [{"type": "approve"}]}
NO_LEASE_APP = "tests.support.no_lease_wsgi:app"


def turn(server: GunicornServer, thread_id: str, body: dict[str, Any], on_event: Callable[[str], None] | None = None) -> tuple[int, Any]:
    """POST a turn on a new connection: (status, [(event, data), ...]) for a stream, (status, JSON) for a refusal."""
    with httpx.Client(timeout=60) as client, client.stream("POST", f"{server.url}/api/threads/{thread_id}/events", json=body) as response:
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            response.read()
            return response.status_code, response.json()
        found: list[tuple[str, Any]] = []
        event = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
                if on_event is not None:
                    on_event(event)
            elif line.startswith("data: ") and event is not None:
                found.append((event, json.loads(line[6:])))
                event = None
        return response.status_code, found


def kinds(found: list[tuple[str, Any]]) -> list[str]:
    return [event for event, _ in found]


def new_thread(server: GunicornServer) -> str:
    created = httpx.post(f"{server.url}/api/threads", timeout=10)
    assert created.status_code == 201, created.text
    return created.json()["thread_id"]


def shown(server: GunicornServer, thread_id: str) -> dict[str, Any]:
    return httpx.get(f"{server.url}/api/threads/{thread_id}", timeout=10).json()


def log_lines(server: GunicornServer, message: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("message") == message]


@pytest.fixture(scope="module")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PostgresServer, RedisServer]]:
    with postgres_and_redis(tmp_path_factory.mktemp("thread-dbs")) as databases:
        yield databases


def shared_env(postgres: PostgresServer, redis: RedisServer, **extra: str) -> dict[str, str]:
    return {**SCRIPTED, "WEBAPP_THREAD_STORE": postgres.url, "WEBAPP_STREAM_STORE": redis.url, **extra}


def test_the_embedded_default_keeps_a_thread_across_both_workers(gunicorn: Callable[..., GunicornServer], tmp_path: Path) -> None:
    server = gunicorn(env={**SCRIPTED, "WEBAPP_THREAD_STORE": f"sqlite:///{tmp_path}/threads.db"}, name="sqlite")
    thread_id = new_thread(server)
    pids: set[int] = set()
    turns = 0
    while len(pids) < 2 and turns < 16:  # new connections land on either worker; bounded
        status, found = turn(server, thread_id, {"message": f"what time is it, turn {turns}"})
        assert status == 200 and kinds(found)[-1] == "end", found
        turns += 1
        pids = {s["pid"] for s in log_lines(server, "stream_summary") if s.get("thread_id") == thread_id}
    assert len(pids) == 2, "every turn landed on one worker: the test proved nothing"
    messages = shown(server, thread_id)["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"] == [f"what time is it, turn {i}" for i in range(turns)]


def test_negative_control_a_store_per_worker_loses_the_thread_on_the_other_worker(gunicorn: Callable[..., GunicornServer]) -> None:
    server = gunicorn(env={**SCRIPTED, "WEBAPP_THREAD_STORE": "sqlite:///:memory:"}, name="per-worker")
    thread_id = new_thread(server)
    statuses = [httpx.get(f"{server.url}/api/threads/{thread_id}", timeout=10).status_code for _ in range(30)]
    assert 404 in statuses and 200 in statuses, statuses  # the worker that did not create it has never heard of it


def test_a_paused_thread_survives_a_restart_of_everything_and_resumes_once_on_the_other_instance(
    gunicorn: Callable[..., GunicornServer],
    databases: tuple[PostgresServer, RedisServer],
) -> None:
    postgres, redis = databases
    env = shared_env(postgres, redis)
    first, second = gunicorn(env=env, name="first"), gunicorn(env=env, name="second")
    thread_id = new_thread(first)
    status, found = turn(first, thread_id, {"message": EMAIL})
    assert status == 200 and "interrupt" in kinds(found) and found[-1][1]["finish_reason"] == "interrupt"

    for process in (first, second):
        process.stop()
    postgres.stop()
    redis.stop()
    postgres.start()
    redis.start()
    first, second = first.start(), second.start()  # the same ports, the same logs (truncated)

    assert shown(second, thread_id)["status"] == "interrupted"
    status, found = turn(second, thread_id, {"resume": APPROVE})
    assert status == 200 and [d["content"] for e, d in found if e == "tool_result"] == ["queued"], found
    status, again = turn(first, thread_id, {"resume": APPROVE})
    assert status == 409 and again["error"]["type"] == "nothing_to_resume"
    assert sum(len(log_lines(s, "email_queued")) for s in (first, second)) == 1  # the tool ran once


def two_runs_at_once(first: GunicornServer, second: GunicornServer, thread_id: str) -> tuple[tuple[int, Any], tuple[int, Any]]:
    """A slow turn on ``first``; while its tool runs, another turn on ``second``."""
    started = threading.Event()
    results: dict[str, tuple[int, Any]] = {}

    def slow() -> None:
        results["slow"] = turn(
            first, thread_id, {"message": "slowly look up cats"}, on_event=lambda e: started.set() if e == "tool_call_end" else None
        )

    runner = threading.Thread(target=slow)
    runner.start()
    assert started.wait(20), "the slow turn never reached its tool"
    results["other"] = turn(second, thread_id, {"message": "what time is it"})
    runner.join(60)
    return results["slow"], results["other"]


def test_two_runs_on_one_thread_from_two_instances_the_second_gets_409(
    gunicorn: Callable[..., GunicornServer],
    databases: tuple[PostgresServer, RedisServer],
) -> None:
    postgres, redis = databases
    env = shared_env(postgres, redis, WEBAPP_AGENT_SLOW_TOOL_SECONDS="2")
    first, second = gunicorn(env=env, name="first"), gunicorn(env=env, name="second")
    thread_id = new_thread(first)
    (slow_status, slow), (other_status, other) = two_runs_at_once(first, second, thread_id)
    assert slow_status == 200 and kinds(slow)[-1] == "end"
    assert other_status == 409 and other["error"]["type"] == "thread_busy", other
    users = [m["content"] for m in shown(first, thread_id)["messages"] if m["role"] == "user"]
    assert users == ["slowly look up cats"]


def test_negative_control_with_the_lease_off_two_runs_on_one_thread_lose_a_turn(
    gunicorn: Callable[..., GunicornServer],
    databases: tuple[PostgresServer, RedisServer],
) -> None:
    postgres, redis = databases
    env = shared_env(postgres, redis, WEBAPP_AGENT_SLOW_TOOL_SECONDS="2")
    first = gunicorn(env=env, name="first", app=NO_LEASE_APP)
    second = gunicorn(env=env, name="second", app=NO_LEASE_APP)
    thread_id = new_thread(first)
    (slow_status, slow), (other_status, other) = two_runs_at_once(first, second, thread_id)
    assert slow_status == 200 and other_status == 200  # both ran, and both said they ended well...
    assert kinds(slow)[-1] == "end" and kinds(other)[-1] == "end"
    users = [m["content"] for m in shown(first, thread_id)["messages"] if m["role"] == "user"]
    print("user turns kept:", users)
    assert users != ["slowly look up cats", "what time is it"], users  # ...but the thread did not keep both, in order


def test_a_worker_killed_mid_run_frees_its_thread_within_the_lease(
    gunicorn: Callable[..., GunicornServer],
    databases: tuple[PostgresServer, RedisServer],
) -> None:
    postgres, redis = databases
    env = shared_env(postgres, redis, WEBAPP_AGENT_SLOW_TOOL_SECONDS="20", WEBAPP_THREAD_LEASE_SECONDS="3")
    doomed, survivor = gunicorn(env=env, name="doomed"), gunicorn(env=env, name="survivor")
    thread_id = new_thread(survivor)
    started = threading.Event()

    def slow() -> None:
        try:
            turn(doomed, thread_id, {"message": "slowly look up cats"}, on_event=lambda e: started.set() if e == "tool_call_end" else None)
        except httpx.HTTPError:
            pass  # its worker is killed under it

    runner = threading.Thread(target=slow)
    runner.start()
    assert started.wait(20)
    # Mid-tool, as the test means: the model's call is checkpointed (graphs write checkpoints while the next step
    # runs, so right after tool_call_end it may not be yet; a kill before it is the unit tests' case, test_threads.py).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(m.get("tool_calls") for m in shown(survivor, thread_id)["messages"]):
        time.sleep(0.05)
    assert doomed.process is not None
    for worker in psutil.Process(doomed.process.pid).children():
        worker.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    statuses = []
    while time.monotonic() - killed_at < 15:
        status, found = turn(survivor, thread_id, {"message": "what time is it"})
        statuses.append(status)
        if status == 200:
            break
        assert status == 409 and found["error"]["type"] == "thread_busy", found
        time.sleep(0.25)
    recovered = time.monotonic() - killed_at
    runner.join(30)
    print(f"thread free again {recovered:.2f}s after the kill (lease 3 s), statuses {statuses}")
    assert statuses[0] == 409 and statuses[-1] == 200 and recovered < 3 + 3, statuses
    messages = shown(survivor, thread_id)["messages"]
    assert [m["role"] for m in messages][:4] == ["user", "assistant", "tool", "user"]
    assert "did not finish" in messages[2]["content"]  # the killed call was answered, the conversation goes on


@pytest.mark.parametrize("graceful", ["30", "1"], ids=["held", "cut"])
def test_a_deploy_mid_run_holds_or_ends_the_run_and_the_thread_stays_consistent(
    gunicorn: Callable[..., GunicornServer],
    tmp_path: Path,
    graceful: str,
) -> None:
    # SIGHUP mid-tool: the old worker drains. With a graceful timeout past the tool, the run is held and
    # finishes; with 1 s it is cut. Either way the thread then takes the next message, with every tool
    # call answered (its result, or the "did not finish" error) in order.
    env = {
        **SCRIPTED,
        "GUNICORN_WORKERS": "1",
        "WEBAPP_THREAD_STORE": f"sqlite:///{tmp_path}/threads.db",
        "WEBAPP_AGENT_SLOW_TOOL_SECONDS": "4",
        "GUNICORN_GRACEFUL_TIMEOUT": graceful,
        "WEBAPP_THREAD_LEASE_SECONDS": "3",
    }
    server = gunicorn(env=env, name=f"deploy-{graceful}")
    thread_id = new_thread(server)
    started, outcome = threading.Event(), {}

    def slow() -> None:
        try:
            outcome["turn"] = turn(
                server, thread_id, {"message": "slowly look up cats"}, on_event=lambda e: started.set() if e == "tool_call_end" else None
            )
        except httpx.HTTPError as exc:
            outcome["cut"] = repr(exc)

    runner = threading.Thread(target=slow)
    runner.start()
    assert started.wait(20)
    server.signal(signal.SIGHUP)
    runner.join(40)
    if graceful == "30":
        status, found = outcome["turn"]
        assert status == 200 and kinds(found)[-1] == "end", found  # held to its end through the deploy
        assert [d["status"] for e, d in found if e == "tool_result"] == ["success"]
    else:
        ended = outcome.get("turn", (None, [("cut", {})]))[1]
        print("the cut run ended with", outcome.get("cut") or ended[-1])
        assert "cut" in outcome or kinds(ended)[-1] != "end", outcome  # not a whole answer: the drain ended it
    deadline, status, found = time.monotonic() + 15, 0, None
    while time.monotonic() < deadline:  # the new worker takes the next message once the old run's lease is gone
        status, found = turn(server, thread_id, {"message": "what time is it"})
        if status != 409:
            break
        time.sleep(0.25)
    assert status == 200 and kinds(found)[-1] == "end", found
    messages = shown(server, thread_id)["messages"]
    roles = [m["role"] for m in messages]
    print("thread after the deploy:", roles)
    assert [m["content"] for m in messages if m["role"] == "user"] == ["slowly look up cats", "what time is it"], roles
    assert roles[:3] == ["user", "assistant", "tool"] and roles[-1] == "assistant", roles
    first_result = messages[2]["content"]
    assert ("did not finish" in first_result) == (graceful == "1"), first_result  # held: its real result; cut: the error
    calls = {c["id"] for m in messages for c in m.get("tool_calls", [])}
    answered = {m["tool_call_id"] for m in messages if m["role"] == "tool"}
    assert calls == answered, (calls, answered)  # every call has its answer: a conversation any provider accepts
