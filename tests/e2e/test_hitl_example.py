"""examples/hitl_app.py under a real gunicorn: a thread pauses at send_email, survives a restart, and resumes once.

The example's own commands, as its docstring gives them (curl there,
httpx here), on the scripted model; and its /ui/chat with the AI SDK's own
client, approving through ``addToolApprovalResponse``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.node import run_ui_chat
from tests.support.servers import GunicornServer

pytestmark = pytest.mark.e2e

APP = "examples.hitl_app:app"
EMAIL = "please send email to bob about lunch"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"EXAMPLE_THREADS_DB": str(tmp_path / "threads.db"), "GUNICORN_WORKERS": "1", "EXAMPLE_HEARTBEAT_SECONDS": "1"}


def start(artifacts: Path, env: dict[str, str], name: str, port: int | None = None) -> GunicornServer:
    return GunicornServer(artifacts, env=env, app=APP, name=name, ready_path="/", port=port).start()


def turn(server: GunicornServer, thread_id: str, body: dict[str, Any]) -> tuple[int, list[tuple[str, Any]] | Any]:
    response = httpx.post(f"{server.url}/threads/{thread_id}/events", json=body, timeout=60)
    if not response.headers.get("content-type", "").startswith("text/event-stream"):
        return response.status_code, response.json() if response.headers.get("content-type") == "application/json" else response.text
    found = []
    for block in response.text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "event" in fields:
            found.append((fields["event"], json.loads(fields["data"])))
    return response.status_code, found


def test_a_paused_thread_survives_a_restart_and_resumes_exactly_once(artifacts: Path, env: dict[str, str]) -> None:
    first = start(artifacts, env, "hitl-first")
    try:
        thread_id = httpx.post(first.url + "/threads", timeout=10).json()["thread_id"]
        status, events = turn(first, thread_id, {"message": EMAIL})
        assert status == 200 and [e for e, _ in events][-2:] == ["interrupt", "end"], events
        (interrupt,) = [d for e, d in events if e == "interrupt"]
        assert interrupt["interrupts"][0]["value"]["action_requests"][0]["name"] == "send_email"
        bad_status, bad = turn(first, thread_id, {"resume": {"decisions": []}})  # refused before anything runs
        assert bad_status == 400 and bad["error"]["type"] == "invalid_resume", bad
    finally:
        first.stop()
    second = start(artifacts, env, "hitl-second", port=first.port)  # a new process: nothing of the first in memory
    try:
        status, events = turn(second, thread_id, {"resume": {"decisions": [{"type": "approve"}]}})
        results = [d for e, d in events if e == "tool_result"]
        assert status == 200 and [r["content"] for r in results] == ["sent to bob lunch"], events
        assert [e for e, _ in events][-1] == "end"
        again, body = turn(second, thread_id, {"resume": {"decisions": [{"type": "approve"}]}})
        assert again == 409 and body["error"]["type"] == "nothing_to_resume", body  # exactly once
        assert turn(second, "0" * 32, {"message": EMAIL})[0] == 404  # an id the app never handed out
    finally:
        second.stop()


def test_a_rejection_runs_nothing_and_the_model_is_told(artifacts: Path, env: dict[str, str]) -> None:
    server = start(artifacts, env, "hitl-reject")
    try:
        thread_id = httpx.post(server.url + "/threads", timeout=10).json()["thread_id"]
        assert turn(server, thread_id, {"message": EMAIL})[0] == 200
        status, events = turn(server, thread_id, {"resume": {"decisions": [{"type": "reject", "message": "not bob"}]}})
        results = [d for e, d in events if e == "tool_result"]
        assert status == 200 and len(results) == 1 and results[0]["status"] == "error" and "not bob" in results[0]["content"], results
        assert "not bob" in "".join(d["text"] for e, d in events if e == "token")  # the scripted model repeats what the tool said
    finally:
        server.stop()


def test_the_ai_sdk_approves_through_ui_chat(artifacts: Path, env: dict[str, str]) -> None:
    server = start(artifacts, env, "hitl-ui")
    try:
        code, out = run_ui_chat("approve", server.url + "/ui/chat", EMAIL, env={"CHAT_ID": "hitl-example"})
        assert code == 0 and out["error"] is None, out
        assert [(t["state"], t["output"]) for t in out["tools"]] == [("output-available", "sent to bob lunch")], out
    finally:
        server.stop()
