"""The Agent Server API through Flask's test client: every route's behaviour, and every bad input refused before a model call.

The service's own mount (/langgraph) on the demo agent (create_agent +
HumanInTheLoopMiddleware) and the scripted model, records and checkpoints
in SQLite in a temporary directory. The SDKs' view of the same routes is
tests/e2e/test_agent_server.py; the schema's, test_agent_server_conformance.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import FAST_SCRIPTED
from tests.support.model_calls import ModelCalls
from uncut.agent_server import AgentServer, MemoryRecords, SqlRecords
from uncut.agent_server.modes import EVENTS_REFUSED, ModeEvents, parse_modes
from uncut.agent_server.wire import ProtocolError, to_json
from webapp import create_app

EMAIL = {"messages": [{"role": "user", "content": "please send email to bob about lunch"}]}
HELLO = {"messages": [{"role": "user", "content": "hello there"}]}
APPROVE = {"decisions": [{"type": "approve"}]}


@pytest.fixture
def calls() -> ModelCalls:
    return ModelCalls()


@pytest.fixture
def client(tmp_path: Path, calls: ModelCalls) -> FlaskClient:
    app = create_app({**FAST_SCRIPTED, "WEBAPP_THREAD_STORE": f"sqlite:///{tmp_path}/threads.db"}, environ={}, callbacks=[calls])
    return app.test_client()


def sse(response: Any) -> list[tuple[str, Any, str | None]]:
    """(event, data, id) of each event of a streamed body."""
    found = []
    for block in response.get_data(as_text=True).split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "event" in fields:
            found.append((fields["event"], json.loads(fields["data"]), fields.get("id")))
    return found


def new_thread(client: FlaskClient, **body: Any) -> str:
    response = client.post("/langgraph/threads", json=body)
    assert response.status_code == 200, response.json
    return str(response.json["thread_id"])


def stream(client: FlaskClient, thread: str, **body: Any) -> list[tuple[str, Any, str | None]]:
    response = client.post(f"/langgraph/threads/{thread}/runs/stream", json={"assistant_id": "agent", **body})
    assert response.status_code == 200, response.get_data(as_text=True)
    return sse(response)


def test_every_event_has_an_id_and_the_stream_starts_with_metadata_and_ends_with_end(client: FlaskClient) -> None:
    thread = new_thread(client)
    found = stream(client, thread, input=HELLO, stream_mode=["messages-tuple", "values"])
    assert found[0][0] == "metadata" and found[0][1]["attempt"] == 1
    assert found[-1][:2] == ("end", None)
    assert [int(i) for _, _, i in found] == list(range(len(found)))  # contiguous ids: Last-Event-ID can resume anywhere


def test_joining_with_last_event_id_sends_exactly_the_rest(client: FlaskClient) -> None:
    thread = new_thread(client)
    found = stream(client, thread, input=HELLO, stream_mode="messages-tuple")
    run_id = found[0][1]["run_id"]
    for cut in (0, 3, len(found) - 2):
        rest = sse(client.get(f"/langgraph/threads/{thread}/runs/{run_id}/stream", headers={"Last-Event-ID": found[cut][2]}))
        assert rest == found[cut + 1 :]
    whole = client.get(f"/langgraph/threads/{thread}/runs/{run_id}/stream")
    assert sse(whole) == found  # no Last-Event-ID: the whole run again, from its log
    done = client.get(f"/langgraph/threads/{thread}/runs/{run_id}/stream", headers={"Last-Event-ID": found[-1][2]})
    assert done.status_code == 200 and done.get_data() == b""
    bad = client.get(f"/langgraph/threads/{thread}/runs/{run_id}/stream", headers={"Last-Event-ID": "yesterday"})
    assert bad.status_code == 422


def test_threads_create_search_patch_delete(client: FlaskClient) -> None:
    fixed = str(uuid.uuid4())
    assert new_thread(client, thread_id=fixed, metadata={"team": "a"}) == fixed
    assert client.post("/langgraph/threads", json={"thread_id": fixed}).status_code == 409
    assert client.post("/langgraph/threads", json={"thread_id": fixed, "if_exists": "do_nothing"}).json["metadata"]["team"] == "a"
    other = new_thread(client, metadata={"team": "b"})
    assert [t["thread_id"] for t in client.post("/langgraph/threads/search", json={"metadata": {"team": "b"}}).json] == [other]
    assert client.post("/langgraph/threads/count", json={}).json == 2
    patched = client.patch(f"/langgraph/threads/{fixed}", json={"metadata": {"stage": "x"}}).json
    assert patched["metadata"] == {"team": "a", "stage": "x"}
    assert client.delete(f"/langgraph/threads/{fixed}").status_code == 204
    assert client.get(f"/langgraph/threads/{fixed}").status_code == 404
    assert client.post("/langgraph/threads/search", json={"limit": 1, "offset": 0}).json[0]["thread_id"] == other


def test_a_busy_thread_cannot_be_deleted_updated_or_run_again(client: FlaskClient) -> None:
    from uncut.agent_server.runs import lease_key
    from uncut.flask import current_streams
    from uncut.leases import take_lease

    thread = new_thread(client)
    with client.application.app_context():
        lease = take_lease(current_streams().leases, lease_key(thread), 30)
    assert lease is not None
    try:
        assert client.get(f"/langgraph/threads/{thread}").json["status"] == "busy"
        assert client.delete(f"/langgraph/threads/{thread}").status_code == 409
        assert client.post(f"/langgraph/threads/{thread}/state", json={"values": HELLO}).status_code == 409
        busy = client.post(f"/langgraph/threads/{thread}/runs/stream", json={"assistant_id": "agent", "input": HELLO})
        assert busy.status_code == 409 and "reject" in busy.json["detail"]
    finally:
        lease.release()


def test_state_update_history_and_a_run_from_an_earlier_checkpoint(client: FlaskClient) -> None:
    thread = new_thread(client)
    stream(client, thread, input=HELLO)
    stream(client, thread, input={"messages": [{"role": "user", "content": "second"}]})
    history = client.post(f"/langgraph/threads/{thread}/history", json={"limit": 100}).json
    assert len(history) >= 4
    early = next(s for s in reversed(history) if len(s["values"].get("messages", [])) == 2)  # after the first answer
    at = client.get(f"/langgraph/threads/{thread}/state/{early['checkpoint']['checkpoint_id']}").json
    assert at["values"] == early["values"]
    forked = stream(
        client,
        thread,
        input={"messages": [{"role": "user", "content": "instead"}]},
        checkpoint_id=early["checkpoint"]["checkpoint_id"],
        stream_mode="values",
    )
    humans = [m["content"] for m in forked[-2][1]["messages"] if m["type"] == "human"]
    assert humans == ["hello there", "instead"]
    updated = client.post(f"/langgraph/threads/{thread}/state", json={"values": {"messages": [{"role": "user", "content": "noted"}]}})
    assert updated.status_code == 200 and updated.json["checkpoint"]["checkpoint_id"]
    assert client.get(f"/langgraph/threads/{thread}/state").json["values"]["messages"][-1]["content"] == "noted"
    bad = client.post(f"/langgraph/threads/{thread}/state", json={"values": {"messages": 5}, "as_node": "nope"})
    assert bad.status_code == 422
    assert client.get(f"/langgraph/threads/{thread}/state/{uuid.uuid4()}").status_code == 404


def test_interrupt_before_a_node_stops_there_and_a_command_resumes(client: FlaskClient, calls: ModelCalls) -> None:
    thread = new_thread(client)
    stream(client, thread, input=HELLO, interrupt_before=["model"])
    assert calls.count == 0
    state = client.get(f"/langgraph/threads/{thread}/state").json
    assert state["next"] == ["model"]
    stream(client, thread, input=None)  # null input continues from the checkpoint
    assert calls.count >= 1
    assert client.get(f"/langgraph/threads/{thread}/state").json["values"]["messages"][-1]["type"] == "ai"


def test_subgraph_events_are_named_mode_and_namespace(client: FlaskClient) -> None:
    thread = new_thread(client)
    found = stream(client, thread, input=HELLO, stream_mode=["updates"], stream_subgraphs=True)
    assert any(event == "updates" for event, _, _ in found)
    assert all(event in ("metadata", "end") or event.startswith("updates") for event, _, _ in found)


def test_resume_answers_are_checked_before_the_run(client: FlaskClient, calls: ModelCalls) -> None:
    thread = new_thread(client)
    stream(client, thread, input=EMAIL)
    before = calls.count
    for resume in ({"decisions": [{"type": "maybe"}]}, {"decisions": []}, "yes"):
        refused = client.post(f"/langgraph/threads/{thread}/runs/stream", json={"assistant_id": "agent", "command": {"resume": resume}})
        assert refused.status_code == 422 and "resume" in refused.json["detail"], refused.json
    assert calls.count == before
    done = stream(client, thread, command={"resume": APPROVE}, stream_mode="values")
    assert done[-1][0] == "end"
    assert client.get(f"/langgraph/threads/{thread}").json["status"] == "idle"


HOSTILE_RUNS: list[tuple[str, Any]] = [
    ("not an object", [1, 2]),
    ("unknown field", {"input": HELLO, "surprise": 1}),
    ("no assistant", {"input": HELLO, "assistant_id": None}),
    ("unknown assistant", {"input": HELLO, "assistant_id": "../../etc/passwd"}),
    ("assistant not a string", {"input": HELLO, "assistant_id": {"$ne": 1}}),
    ("stream_mode type", {"input": HELLO, "stream_mode": 5}),
    ("stream_mode unknown", {"input": HELLO, "stream_mode": ["values", "x" * 10_000]}),
    ("events", {"input": HELLO, "stream_mode": "events"}),
    ("subgraphs not bool", {"input": HELLO, "stream_subgraphs": "yes"}),
    ("config not object", {"input": HELLO, "config": "x"}),
    ("config thread_id", {"input": HELLO, "config": {"configurable": {"thread_id": "other"}}}),
    ("config checkpoint_ns", {"input": HELLO, "config": {"configurable": {"checkpoint_ns": "x"}}}),
    ("config pregel internals", {"input": HELLO, "config": {"configurable": {"__pregel_send": 1}}}),
    ("config callbacks", {"input": HELLO, "config": {"callbacks": ["x"]}}),
    ("recursion limit huge", {"input": HELLO, "config": {"recursion_limit": 10**12}}),
    ("recursion limit bool", {"input": HELLO, "config": {"recursion_limit": True}}),
    ("tags", {"input": HELLO, "config": {"tags": [1]}}),
    ("metadata type", {"input": HELLO, "metadata": ["a"]}),
    ("metadata huge", {"input": HELLO, "metadata": {"a": "b" * 20_000}}),
    ("context type", {"input": HELLO, "context": 3}),
    ("command and input", {"input": HELLO, "command": {"update": {}}}),
    ("command empty", {"command": {}}),
    ("command unknown key", {"command": {"resume": 1, "exec": "rm -rf /"}}),
    ("command goto unknown", {"command": {"goto": ["nowhere"]}}),
    ("command update type", {"command": {"update": "x"}}),
    ("resume with nothing pending", {"command": {"resume": APPROVE}}),
    ("multitask", {"input": HELLO, "multitask_strategy": "all"}),
    ("on_disconnect", {"input": HELLO, "on_disconnect": "explode"}),
    ("durability", {"input": HELLO, "durability": "forever"}),
    ("interrupt_before unknown", {"input": HELLO, "interrupt_before": ["nowhere"]}),
    ("interrupt_after type", {"input": HELLO, "interrupt_after": "model"}),
    ("checkpoint_id type", {"input": HELLO, "checkpoint_id": 5}),
    ("checkpoint ns", {"input": HELLO, "checkpoint": {"checkpoint_ns": "sub"}}),
    ("if_not_exists", {"input": HELLO, "if_not_exists": "maybe"}),
    ("webhook", {"input": HELLO, "webhook": "http://127.0.0.1:1/"}),
    ("after_seconds", {"input": HELLO, "after_seconds": 60}),
]


@pytest.mark.parametrize("name,body", HOSTILE_RUNS, ids=[n for n, _ in HOSTILE_RUNS])
def test_a_bad_run_body_gets_a_4xx_detail_before_any_model_call(client: FlaskClient, calls: ModelCalls, name: str, body: Any) -> None:
    thread = new_thread(client)
    sent = {"assistant_id": "agent", **body} if isinstance(body, dict) and "assistant_id" not in body else body
    for path in (f"/langgraph/threads/{thread}/runs/stream", f"/langgraph/threads/{thread}/runs", f"/langgraph/threads/{thread}/runs/wait"):
        response = client.post(path, json=sent)
        assert 400 <= response.status_code < 500, (path, response.status_code, response.get_data(as_text=True))
        assert isinstance(response.json["detail"], str) and response.json["detail"]
    assert calls.count == 0
    assert client.get(f"/langgraph/threads/{thread}/runs").json == []


def test_malformed_requests_and_unserved_routes_are_clear(client: FlaskClient) -> None:
    thread = new_thread(client)
    assert client.post(f"/langgraph/threads/{thread}/runs/stream", data=b"{not json", content_type="application/json").status_code == 422
    assert client.post("/langgraph/threads", json={"thread_id": "not-a-uuid"}).status_code == 422
    assert client.post("/langgraph/threads", json={"supersteps": [{}]}).status_code == 422
    assert client.post("/langgraph/threads/search", json={"limit": 10**6}).status_code == 422
    assert client.post("/langgraph/threads/search", json={"status": "sleeping"}).status_code == 422
    assert client.get(f"/langgraph/threads/{thread}/runs?limit=-1").status_code == 422
    assert client.post(f"/langgraph/threads/{thread}/runs/{uuid.uuid4()}/cancel?action=explode").status_code == 404
    assert client.get("/langgraph/threads/" + "x" * 5000).status_code == 422  # not a thread id
    bad_input = client.post(f"/langgraph/threads/{thread}/runs/wait", json={"assistant_id": "agent", "input": {"messages": 5}})
    assert bad_input.status_code == 422 and "not a message" in bad_input.json["detail"]
    assert client.post("/langgraph/threads/prune", json={}).status_code == 404  # an unserved route, not a thread called prune
    for method, path in (
        ("POST", "/assistants"),
        ("PUT", "/store/items"),
        ("POST", "/runs/crons"),
        ("POST", f"/threads/{thread}/copy"),
        ("GET", f"/threads/{thread}/stream"),
        ("POST", "/runs/batch"),
    ):
        response = client.open("/langgraph" + path, method=method, json={})
        assert response.status_code in (404, 405) and response.json["detail"], (method, path, response.status_code)
    assert client.delete("/langgraph/info").status_code == 405


def test_stateless_runs_leave_no_thread_behind(client: FlaskClient) -> None:
    response = client.post("/langgraph/runs/stream", json={"assistant_id": "agent", "input": HELLO, "stream_mode": "values"})
    found = sse(response)
    assert found[0][0] == "metadata" and found[-1][0] == "end" and "location" not in response.headers
    values = client.post("/langgraph/runs/wait", json={"assistant_id": "agent", "input": HELLO}).json
    assert values["messages"][-1]["type"] == "ai"
    assert client.post("/langgraph/threads/search", json={}).json == []
    assert client.post("/langgraph/runs/wait", json={"assistant_id": "agent", "input": HELLO, "checkpoint_id": "x"}).status_code == 422


def test_a_run_on_a_missing_thread_is_404_unless_if_not_exists_create(client: FlaskClient) -> None:
    missing = str(uuid.uuid4())
    assert client.post(f"/langgraph/threads/{missing}/runs/wait", json={"assistant_id": "agent", "input": HELLO}).status_code == 404
    made = client.post(f"/langgraph/threads/{missing}/runs/wait", json={"assistant_id": "agent", "input": HELLO, "if_not_exists": "create"})
    assert made.status_code == 200 and client.get(f"/langgraph/threads/{missing}").status_code == 200


def library_app(node: Any) -> FlaskClient:
    """A plain Flask app with the library's blueprint on a one-node graph: how a team mounts it in its own app."""
    from flask import Flask
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import START, MessagesState, StateGraph

    from uncut import Streams
    from uncut.flask import agent_server_blueprint

    builder = StateGraph(MessagesState)
    builder.add_node("work", node)
    builder.add_edge(START, "work")
    app = Flask(__name__)
    app.register_blueprint(agent_server_blueprint(AgentServer({"work": builder.compile(checkpointer=InMemorySaver())}, Streams())))
    return app.test_client()


def test_a_failed_run_is_an_error_event_an_error_status_and_an_error_answer() -> None:
    def broken(state: Any) -> Any:
        raise RuntimeError("the tool's database is down: secret-host:5432")

    client = library_app(broken)
    thread = new_thread(client)
    response = client.post(f"/langgraph/threads/{thread}/runs/stream", json={"assistant_id": "work", "input": HELLO})
    found = sse(response)
    assert found[-1][0] == "error" and set(found[-1][1]) == {"error", "message"}
    assert "secret-host" not in response.get_data(as_text=True)  # the client learns that it failed, not the internals
    runs = client.get(f"/langgraph/threads/{thread}/runs").json
    assert runs[0]["status"] == "error" and client.get(f"/langgraph/threads/{thread}").json["status"] == "error"
    waited = client.post(f"/langgraph/threads/{thread}/runs/wait", json={"assistant_id": "work", "input": HELLO}).json
    assert "__error__" in waited


def test_a_plain_flask_app_serves_a_graph_with_the_blueprint() -> None:
    from langchain_core.messages import AIMessage

    client = library_app(lambda state: {"messages": [AIMessage(content="echo: " + state["messages"][-1].content)]})
    values = client.post("/langgraph/runs/wait", json={"assistant_id": "work", "input": HELLO}).json
    assert values["messages"][-1]["content"] == "echo: hello there"


def test_assistants_are_one_per_graph_with_stable_ids(client: FlaskClient) -> None:
    found = client.post("/langgraph/assistants/search", json={}).json
    assert [a["assistant_id"] for a in found] == ["fe096781-5601-53d2-b2f6-0d3403f7e9ca"]  # uuid5 of "agent": the same everywhere, always
    assistant = found[0]["assistant_id"]
    assert client.get(f"/langgraph/assistants/{assistant}").json["graph_id"] == "agent"
    graph = client.get(f"/langgraph/assistants/{assistant}/graph").json
    assert {n["id"] for n in graph["nodes"]} >= {"model", "tools"}
    schemas = client.get(f"/langgraph/assistants/{assistant}/schemas").json
    assert schemas["graph_id"] == "agent" and "messages" in json.dumps(schemas["input_schema"])
    assert client.get(f"/langgraph/assistants/{uuid.uuid4()}").status_code == 404
    assert client.get("/langgraph/info").json["flags"]["assistants"] is True
    assert client.get("/langgraph/ok").json == {"ok": True}


# -- the parts, without the service ---------------------------------------------------------------


def test_parse_modes() -> None:
    assert parse_modes(None) == ("values",)
    assert parse_modes("updates") == ("updates",)
    assert parse_modes(["values", "values", "messages-tuple"]) == ("values", "messages-tuple")
    with pytest.raises(ProtocolError) as refused:
        parse_modes(["events"])
    assert refused.value.status == 422 and refused.value.detail == EVENTS_REFUSED


def test_legacy_messages_send_the_message_so_far_and_count_text_as_tokens() -> None:
    from langchain_core.messages import AIMessageChunk, ToolMessage

    sent: list[tuple[str, dict[str, Any]]] = []
    events = ModeEvents(lambda kind, data: sent.append((kind, data)), ("messages",))
    meta = {"langgraph_node": "model"}
    for text in ("Hel", "lo"):
        events.feed(("messages", (AIMessageChunk(content=text, id="m1"), meta)))
    events.feed(("messages", (ToolMessage(content="done", tool_call_id="c1", id="t1"), meta)))
    names = [data["e"] for _, data in sent]
    assert names == ["messages/metadata", "messages/partial", "messages/partial", "messages/metadata", "messages/complete"]
    assert sent[2][1]["p"][0]["content"] == "Hello"
    assert [kind for kind, _ in sent] == ["agent", "agent_token", "agent_token", "agent", "agent_token"]


def test_to_json_makes_anything_json() -> None:
    class Odd:
        def __str__(self) -> str:
            return "odd\ud800"

    nested: Any = []
    cursor = nested
    for _ in range(200):
        cursor.append([])
        cursor = cursor[0]
    value = to_json({"a": float("nan"), "b": Odd(), "c": uuid.UUID(int=0), "d": nested, 1: {1, 2}})
    json.dumps(value, allow_nan=False)
    assert value["a"] is None and value["b"].startswith("odd") and value["c"] == "00000000-0000-0000-0000-000000000000"


@pytest.mark.parametrize("make", [MemoryRecords, "sqlite"], ids=["memory", "sqlite"])
def test_records_add_once_put_get_find_delete(make: Any, tmp_path: Path) -> None:
    if make == "sqlite":
        import sqlite3
        from contextlib import contextmanager

        conn = sqlite3.connect(tmp_path / "r.db", isolation_level=None)

        @contextmanager
        def connection() -> Any:
            yield conn

        records: Any = SqlRecords(connection, "?")
    else:
        records = make()
    assert records.add("thread", "t1", "alice", "t1", {"thread_id": "t1", "n": 1})
    assert not records.add("thread", "t1", "bob", "t1", {"thread_id": "t1", "n": 2})
    assert records.get("thread", "t1") == ("alice", {"thread_id": "t1", "n": 1})
    records.put("run", "r1", "alice", "t1", {"run_id": "r1"})
    records.put("run", "r2", "alice", "t1", {"run_id": "r2"})
    records.put("run", "r3", "bob", "t2", {"run_id": "r3"})
    assert {r["run_id"] for r in records.find("run", "alice", "t1")} == {"r1", "r2"}
    assert records.count("run", "bob") == 1
    records.delete("run", "r1")
    assert records.get("run", "r1") is None


def test_a_graph_without_a_checkpointer_is_refused_at_start_up() -> None:
    from langgraph.graph import START, MessagesState, StateGraph

    from uncut import Streams

    builder = StateGraph(MessagesState)
    builder.add_node("echo", lambda state: state)
    builder.add_edge(START, "echo")
    with pytest.raises(ValueError, match="checkpointer"):
        AgentServer({"echo": builder.compile()}, Streams())


def test_a_stream_closed_before_its_first_byte_frees_its_thread_and_says_so() -> None:
    # The response is dropped unread: its run never starts, and must not leave the thread busy or the run pending.
    import time

    from langchain.agents import create_agent
    from langgraph.checkpoint.memory import InMemorySaver

    from uncut import Streams
    from uncut.agent_server import ApiRequest
    from uncut.scripted import ScriptedChatModel

    agent = create_agent(ScriptedChatModel(tokens=5, ttft=0, interval=0.01), [], checkpointer=InMemorySaver())
    server = AgentServer({"agent": agent}, Streams())
    thread = server.handle(ApiRequest("POST", "/threads", body=b"{}")).body["thread_id"]
    run = json.dumps({"assistant_id": "agent", "input": HELLO}).encode()
    server.handle(ApiRequest("POST", f"/threads/{thread}/runs/stream", body=run)).stream_body().close()
    runs = server.handle(ApiRequest("GET", f"/threads/{thread}/runs")).body
    assert [r["status"] for r in runs] == ["interrupted"]
    assert server.handle(ApiRequest("GET", f"/threads/{thread}")).body["status"] != "busy"
    deadline = time.monotonic() + 10
    again = server.handle(ApiRequest("POST", f"/threads/{thread}/runs/wait", body=run))
    while again.status == 409 and time.monotonic() < deadline:
        time.sleep(0.1)
        again = server.handle(ApiRequest("POST", f"/threads/{thread}/runs/wait", body=run))
    assert again.status == 200 and again.body["messages"][-1]["type"] == "ai"


def test_runs_are_held_to_the_fixed_ceilings_not_the_apps_lag_following_line() -> None:
    # LangGraph's SDKs do not retry a 503 on a run: the Agent Server admits by its own fixed ceilings.
    from langchain.agents import create_agent
    from langgraph.checkpoint.memory import InMemorySaver

    from uncut import StreamOptions, Streams
    from uncut.agent_server import ApiRequest
    from uncut.scripted import ScriptedChatModel

    streams = Streams(StreamOptions(max_concurrent_streams=1))
    agent = create_agent(ScriptedChatModel(tokens=5, ttft=0, interval=0.01), [], checkpointer=InMemorySaver())
    server = AgentServer({"agent": agent}, streams)
    run = json.dumps({"assistant_id": "agent", "input": HELLO}).encode()
    held = streams.limiter.try_acquire()  # the app's streams are full
    assert callable(held)
    try:
        first = server.handle(ApiRequest("POST", "/runs/stream", body=run))
        assert first.streaming  # admitted all the same: its own ceiling has room
        second = server.handle(ApiRequest("POST", "/runs/wait", body=run))
        assert second.status == 503 and set(second.body) == {"detail"}  # its own ceiling (1) is full
        assert dict(second.headers)["Retry-After"]
        first.stream_body().close()
    finally:
        held()
