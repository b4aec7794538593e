"""The service's threads through Flask's test client: pause at send_email, answer, continue once; every refusal before a model call.

The real demo agent (create_agent + HumanInTheLoopMiddleware) on the
scripted model, checkpointed in SQLite in a temporary directory.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import FAST_SCRIPTED
from tests.support.model_calls import ModelCalls
from uncut.flask import current_streams
from uncut.leases import take_lease
from webapp import ConfigError, create_app
from webapp.thread_store import ThreadIndex, _sqlite

EMAIL = "please send email to bob about lunch"
APPROVE = {"decisions": [{"type": "approve"}]}


@pytest.fixture
def calls() -> ModelCalls:
    return ModelCalls()


def app_with(tmp_path: Path, calls: ModelCalls | None = None, **settings: str) -> Flask:
    config = {**FAST_SCRIPTED, "WEBAPP_THREAD_STORE": f"sqlite:///{tmp_path}/threads.db", **settings}
    return create_app(config, environ={}, callbacks=[calls] if calls else [])


@pytest.fixture
def client(tmp_path: Path, calls: ModelCalls) -> FlaskClient:
    return app_with(tmp_path, calls).test_client()


def events(response: Any) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for block in response.get_data(as_text=True).split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "event" in fields:
            found.append((fields["event"], json.loads(fields["data"])))
    return found


def of_kind(found: list[tuple[str, dict[str, Any]]], kind: str) -> list[dict[str, Any]]:
    return [data for event, data in found if event == kind]


def paused_thread(client: FlaskClient, headers: dict[str, str] | None = None) -> tuple[str, dict[str, Any]]:
    created = client.post("/api/threads", headers=headers)
    assert created.status_code == 201, created.get_json()
    thread_id = created.get_json()["thread_id"]
    first = events(client.post(f"/api/threads/{thread_id}/events", json={"message": EMAIL}, headers=headers))
    (interrupt,) = of_kind(first, "interrupt")
    assert of_kind(first, "end")[0]["finish_reason"] == "interrupt"
    return thread_id, interrupt["interrupts"][0]


def queued(caplog: pytest.LogCaptureFixture) -> int:
    return sum(1 for r in caplog.records if r.getMessage() == "email_queued")


def test_a_thread_pauses_for_approval_shows_it_and_continues_exactly_once(client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="webapp")
    thread_id, pending = paused_thread(client)
    assert pending["value"]["action_requests"][0]["name"] == "send_email"
    shown = client.get(f"/api/threads/{thread_id}").get_json()
    assert shown["status"] == "interrupted" and shown["interrupts"][0]["id"] == pending["id"]
    assert queued(caplog) == 0

    resumed = events(client.post(f"/api/threads/{thread_id}/events", json={"resume": APPROVE}))
    assert [r["content"] for r in of_kind(resumed, "tool_result")] == ["queued"] and queued(caplog) == 1
    again = client.post(f"/api/threads/{thread_id}/events", json={"resume": APPROVE})
    assert again.status_code == 409 and again.get_json()["error"]["type"] == "nothing_to_resume"
    assert queued(caplog) == 1

    shown = client.get(f"/api/threads/{thread_id}").get_json()
    assert shown["status"] == "idle" and [m["role"] for m in shown["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert shown["messages"][1]["tool_calls"][0]["name"] == "send_email"


def test_a_rejection_tells_the_model_and_runs_nothing(client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="webapp")
    thread_id, _ = paused_thread(client)
    reject = {"decisions": [{"type": "reject", "message": "not to bob"}]}
    resumed = events(client.post(f"/api/threads/{thread_id}/events", json={"resume": reject}))
    (result,) = of_kind(resumed, "tool_result")
    assert result["status"] == "error" and "not to bob" in result["content"] and queued(caplog) == 0


BAD_RESUMES = {
    "no decisions": ({"decisions": []}, "invalid_resume"),
    "a decision send_email does not allow": ({"decisions": [{"type": "respond", "message": "x"}]}, "invalid_resume"),
    "edited arguments off the schema": (
        {"decisions": [{"type": "edit", "edited_action": {"name": "send_email", "args": {"to": []}}}]},
        "invalid_resume",
    ),
    "a string": ("yes", "invalid_resume"),
}


@pytest.mark.parametrize(("resume", "kind"), BAD_RESUMES.values(), ids=BAD_RESUMES.keys())
def test_a_bad_resume_is_a_400_before_any_model_call(client: FlaskClient, calls: ModelCalls, resume: Any, kind: str) -> None:
    thread_id, _ = paused_thread(client)
    before = calls.count
    refused = client.post(f"/api/threads/{thread_id}/events", json={"resume": resume})
    assert refused.status_code == 400 and refused.get_json()["error"]["type"] == kind, refused.get_json()
    assert calls.count == before


BAD_BODIES = {
    "both": {"message": "hi", "resume": APPROVE},
    "neither": {},
    "unknown field": {"message": "hi", "thread": "x"},
    "reject_pending not a bool": {"message": "hi", "reject_pending": "yes"},
    "empty message": {"message": "  "},
    "message not text": {"message": ["hi"]},
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_a_malformed_turn_is_a_400(client: FlaskClient, body: Any) -> None:
    thread_id = client.post("/api/threads").get_json()["thread_id"]
    refused = client.post(f"/api/threads/{thread_id}/events", json=body)
    assert refused.status_code == 400 and refused.get_json()["error"]["type"] == "invalid_request", refused.get_json()


def test_a_new_message_while_an_approval_waits_is_409_unless_it_rejects_the_pending_call(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="webapp")
    thread_id, _ = paused_thread(client)
    refused = client.post(f"/api/threads/{thread_id}/events", json={"message": "what time is it"})
    assert refused.status_code == 409 and refused.get_json()["error"]["type"] == "interrupted"
    passed = client.post(f"/api/threads/{thread_id}/events", json={"message": "what time is it", "reject_pending": True})
    assert passed.status_code == 200 and of_kind(events(passed), "end")
    roles = [m["role"] for m in client.get(f"/api/threads/{thread_id}").get_json()["messages"]]
    assert roles[:4] == ["user", "assistant", "tool", "user"] and queued(caplog) == 0


def test_a_busy_thread_refuses_a_second_run_and_its_deletion(tmp_path: Path) -> None:
    app = app_with(tmp_path)
    client = app.test_client()
    thread_id = client.post("/api/threads").get_json()["thread_id"]
    with app.app_context():
        held = take_lease(current_streams().leases, thread_id)  # a run elsewhere holds it
    assert held is not None
    busy = client.post(f"/api/threads/{thread_id}/events", json={"message": "hi"})
    assert busy.status_code == 409 and busy.get_json()["error"]["type"] == "thread_busy"
    assert client.get(f"/api/threads/{thread_id}").get_json()["status"] == "busy"
    assert client.delete(f"/api/threads/{thread_id}").status_code == 409
    held.release()
    assert of_kind(events(client.post(f"/api/threads/{thread_id}/events", json={"message": "hi"})), "end")
    assert client.delete(f"/api/threads/{thread_id}").status_code == 204
    assert client.get(f"/api/threads/{thread_id}").status_code == 404


def test_a_thread_is_its_keys_alone(tmp_path: Path) -> None:
    client = app_with(tmp_path, WEBAPP_API_KEYS="key-a-0123456789abcdef,key-b-0123456789abcdef").test_client()
    a, b = {"Authorization": "Bearer key-a-0123456789abcdef"}, {"Authorization": "Bearer key-b-0123456789abcdef"}
    thread_id, _ = paused_thread(client, a)
    for method, path, body in (("get", "", None), ("post", "/events", {"resume": APPROVE}), ("delete", "", None)):
        stranger = getattr(client, method)(f"/api/threads/{thread_id}{path}", json=body, headers=b)
        assert stranger.status_code == 404 and stranger.get_json()["error"]["type"] == "thread_not_found", (method, path)
    assert client.get("/api/threads/t_never", headers=a).status_code == 404  # the same answer as a stranger's
    assert client.get(f"/api/threads/{thread_id}", headers=a).get_json()["status"] == "interrupted"  # untouched


def test_a_key_keeps_at_most_its_share_of_threads(tmp_path: Path) -> None:
    client = app_with(tmp_path, WEBAPP_MAX_THREADS_PER_KEY="2").test_client()
    assert [client.post("/api/threads").status_code for _ in range(3)] == [201, 201, 429]
    assert client.post("/api/threads").get_json()["error"]["type"] == "too_many_threads"


def test_threads_expire_after_their_ttl_with_their_checkpoints(tmp_path: Path) -> None:
    store = _sqlite(str(tmp_path / "t.db"), ttl_seconds=60, max_per_owner=1)
    now = [1000.0]
    index = ThreadIndex(store.index._connection, "?", 60, 1, store.checkpointer.delete_thread, clock=lambda: now[0])
    first = index.create("k")
    assert index.owns("k", first) and not index.owns("other", first)
    now[0] += 61
    assert not index.owns("k", first)  # expired: gone for its owner too
    second = index.create("k")  # the sweep made room (max 1 per owner)
    assert index.owns("k", second) and index.sweep() == 0


def test_a_thread_store_url_that_is_neither_sqlite_nor_postgres_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="WEBAPP_THREAD_STORE"):
        app_with(tmp_path, WEBAPP_THREAD_STORE="mysql://x")


def test_a_thread_store_that_does_not_answer_is_a_503_naming_it(tmp_path: Path) -> None:
    client = app_with(tmp_path, WEBAPP_THREAD_STORE="postgresql://u:secret@127.0.0.1:9/none").test_client()
    refused = client.post("/api/threads")
    assert refused.status_code == 503 and refused.get_json()["error"]["type"] == "thread_store_unavailable"
    assert "secret" not in refused.get_data(as_text=True)


def test_leases_in_the_thread_store_expire_and_are_taken_over_by_one_worker_only(tmp_path: Path) -> None:
    from webapp.thread_store import SqlLeases

    path = str(tmp_path / "t.db")
    now = [1000.0]
    one = SqlLeases(_sqlite(path, 60, 0).index._connection, "?", clock=lambda: now[0])
    two = SqlLeases(_sqlite(path, 60, 0).index._connection, "?", clock=lambda: now[0])  # another worker's connection
    assert one.take("t", "a", 10) and not two.take("t", "b", 10)
    now[0] += 9
    assert one.renew("t", "a", 10) and not two.take("t", "b", 10)
    now[0] += 11  # the holder died: nobody renewed
    assert two.take("t", "b", 10) and not one.take("t", "c", 10) and two.holder("t") == "b"
    assert not one.renew("t", "a", 10)  # the old holder cannot renew its way back
    one.give_back("t", "a")
    assert two.holder("t") == "b"  # nor free someone else's
