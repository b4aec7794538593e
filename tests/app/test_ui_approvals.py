"""AI SDK approvals on /api/ui/chat?agent=1: the chat's thread stops at send_email, and the chat's next request answers.

The real demo agent (create_agent + HumanInTheLoopMiddleware) on the
scripted model, its thread in SQLite in a temporary directory, through
Flask's test client. The requests are the ones the SDK sends: the first
with the user's message; the next with the assistant message whose tool
part is ``approval-responded`` (``addToolApprovalResponse``). The AI SDK's
own client does the same in e2e/test_ai_sdk.py.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.app.test_threads import ModelCalls
from tests.conftest import FAST_SCRIPTED
from webapp import create_app

EMAIL = "please send email to bob about lunch"
URL = "/api/ui/chat?agent=1"


@pytest.fixture
def calls() -> ModelCalls:
    return ModelCalls()


@pytest.fixture
def client(tmp_path: Path, calls: ModelCalls) -> FlaskClient:
    config = {**FAST_SCRIPTED, "WEBAPP_THREAD_STORE": f"sqlite:///{tmp_path}/threads.db"}
    return create_app(config, environ={}, callbacks=[calls]).test_client()


def chunks(raw: bytes) -> list[Any]:
    return [json.loads(block[6:]) for block in raw.decode().split("\n\n") if block.startswith("data: {")]


def user(text: str, message_id: str = "u1") -> dict[str, Any]:
    return {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]}


def assistant_message(got: list[dict[str, Any]]) -> dict[str, Any]:
    """The assistant message the SDK builds from these chunks: its id and its tool parts, as it sends them back."""
    (start,) = [c for c in got if c["type"] == "start"]
    parts: list[dict[str, Any]] = [{"type": "step-start"}]
    for c in got:
        if c["type"] == "tool-input-available":
            parts.append({"type": f"tool-{c['toolName']}", "toolCallId": c["toolCallId"], "state": "input-available", "input": c["input"]})
        elif c["type"] == "tool-approval-request":
            part = next(p for p in parts if p.get("toolCallId") == c["toolCallId"])
            part.update(state="approval-requested", approval={"id": c["approvalId"]})
    return {"id": start["messageId"], "role": "assistant", "parts": parts}


def answered(message: dict[str, Any], approved: bool, reason: str | None = None) -> dict[str, Any]:
    """The message after ``addToolApprovalResponse`` on each of its requests."""
    message = copy.deepcopy(message)
    for part in message["parts"]:
        if part.get("state") == "approval-requested":
            part["state"] = "approval-responded"
            part["approval"] = {**part["approval"], "approved": approved, **({"reason": reason} if reason else {})}
    return message


def ask(client: FlaskClient, chat_id: str = "chat-1") -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The first turn: (the chunks, the conversation the client now holds)."""
    response = client.post(URL, json={"id": chat_id, "trigger": "submit-message", "messages": [user(EMAIL)]})
    assert response.status_code == 200, response.get_data(as_text=True)
    got = chunks(response.data)
    return got, [user(EMAIL), assistant_message(got)]


def answer(
    client: FlaskClient, conversation: list[dict[str, Any]], approved: bool, chat_id: str = "chat-1", reason: str | None = None
) -> Any:
    last = answered(conversation[-1], approved, reason)
    body = {"id": chat_id, "trigger": "submit-message", "messageId": last["id"], "messages": [*conversation[:-1], last]}
    return client.post(URL, json=body)


def queued(caplog: pytest.LogCaptureFixture) -> int:
    return sum(1 for r in caplog.records if r.getMessage() == "email_queued")


def test_the_agent_asks_for_approval_on_the_call_and_finishes_the_message(client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    got, _ = ask(client)
    kinds = [c["type"] for c in got]
    (call,) = [c for c in got if c["type"] == "tool-input-available"]
    (request,) = [c for c in got if c["type"] == "tool-approval-request"]
    assert call["toolName"] == "send_email" and request["toolCallId"] == call["toolCallId"]
    assert kinds.index("tool-approval-request") > kinds.index("tool-input-available")
    assert "data-interrupt" not in kinds  # the approval is the SDK's own part, not a data part
    assert got[-1] == {"type": "finish", "finishReason": "tool-calls"}
    assert queued(caplog) == 0  # nothing sent before the answer


def test_an_approval_runs_the_tool_once_in_the_same_message_and_a_second_answer_is_409(
    client: FlaskClient,
    caplog: pytest.LogCaptureFixture,
    calls: ModelCalls,
) -> None:
    caplog.set_level(logging.INFO)
    first, conversation = ask(client)
    response = answer(client, conversation, approved=True)
    assert response.status_code == 200, response.get_data(as_text=True)
    got = chunks(response.data)
    call_id = next(c["toolCallId"] for c in first if c["type"] == "tool-approval-request")
    assert got[0] == {"type": "start", "messageId": conversation[-1]["id"]}  # the same message goes on
    outputs = [c for c in got if c["type"] == "tool-output-available"]
    assert [o["toolCallId"] for o in outputs] == [call_id] and outputs[0]["output"] == "queued"
    assert not [c for c in got if c["type"] in ("tool-input-start", "tool-input-available")]  # the call is not announced again
    assert "".join(c["delta"] for c in got if c["type"] == "text-delta")  # the model answers after the tool
    assert got[-1]["type"] == "finish" and queued(caplog) == 1

    model_calls = calls.count
    again = answer(client, conversation, approved=True)
    assert again.status_code == 409 and again.get_json()["error"]["type"] == "nothing_to_resume"
    assert queued(caplog) == 1 and calls.count == model_calls  # exactly once


def test_a_denial_is_output_denied_and_the_model_hears_the_reason(client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    first, conversation = ask(client)
    got = chunks(answer(client, conversation, approved=False, reason="not to bob").data)
    call_id = next(c["toolCallId"] for c in first if c["type"] == "tool-approval-request")
    assert {"type": "tool-output-denied", "toolCallId": call_id} in got
    assert not [c for c in got if c["type"] in ("tool-output-available", "tool-output-error")]
    assert got[-1]["type"] == "finish" and queued(caplog) == 0


def test_a_new_message_instead_of_an_answer_passes_over_the_approval(client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    _, conversation = ask(client)
    body = {"id": "chat-1", "trigger": "submit-message", "messages": [*conversation, user("never mind, what time is it?", "u2")]}
    response = client.post(URL, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert chunks(response.data)[-1]["type"] == "finish" and queued(caplog) == 0
    late = answer(client, conversation, approved=True)  # the approval was passed over: nothing waits
    assert late.status_code == 409 and queued(caplog) == 0


@pytest.mark.parametrize(
    "spoil, kind",
    [
        (lambda m: m["parts"][1]["approval"].update(id="not-an-approval:0"), "invalid_resume"),
        (lambda m: m["parts"][1]["approval"].update(approved="yes"), "invalid_request"),
        (lambda m: m["parts"][1]["approval"].update(reason=["x"]), "invalid_request"),
        (lambda m: m["parts"][1].update(approval="approved"), "invalid_request"),
        (lambda m: m.update(id=7), "invalid_request"),
        (lambda m: m["parts"].append({**m["parts"][1]}), "invalid_resume"),  # the same approval answered twice
    ],
)
def test_a_malformed_or_foreign_answer_is_refused_before_any_model_call(
    client: FlaskClient,
    calls: ModelCalls,
    spoil: Any,
    kind: str,
) -> None:
    _, conversation = ask(client)
    last = answered(conversation[-1], approved=True)
    spoil(last)
    before = calls.count
    response = client.post(URL, json={"id": "chat-1", "trigger": "submit-message", "messages": [*conversation[:-1], last]})
    assert 400 <= response.status_code < 500 and response.get_json()["error"]["type"] == kind, response.get_data(as_text=True)
    assert calls.count == before


def test_a_chat_is_its_owners_alone(client: FlaskClient, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    _, conversation = ask(client)
    stranger = create_app({**FAST_SCRIPTED, "WEBAPP_THREAD_STORE": f"sqlite:///{tmp_path}/threads.db"}, environ={}).test_client()
    response = answer(stranger, conversation, approved=True)  # another browser, the same chat id and approval id
    assert response.status_code == 409 and queued(caplog) == 0  # its chat of that id has nothing waiting


def test_regenerate_is_refused_on_a_chat_kept_on_a_thread(client: FlaskClient) -> None:
    _, conversation = ask(client)
    body = {"id": "chat-1", "trigger": "regenerate-message", "messages": conversation[:1]}
    response = client.post(URL, json=body)
    assert response.status_code == 400 and response.get_json()["error"]["type"] == "invalid_thread"


def test_with_keys_off_new_browsers_share_one_count_of_threads(tmp_path: Path) -> None:
    # A client that drops its cookie is a new browser (a new owner for its chats), never a new share.
    config = {**FAST_SCRIPTED, "WEBAPP_THREAD_STORE": f"sqlite:///{tmp_path}/threads.db", "WEBAPP_MAX_THREADS_PER_KEY": "2"}
    app = create_app(config, environ={})
    statuses = []
    for n in range(3):
        browser = app.test_client()  # no cookie: a fresh browser id each time
        body = {"id": f"chat-{n}", "trigger": "submit-message", "messages": [user("what time is it?")]}
        statuses.append(browser.post(URL, json=body).status_code)
    assert statuses == [200, 200, 429], statuses
