"""Issue 22's input findings through the Flask test client: each with its negative control."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import FAST_SCRIPTED
from uncut.ui_request import parse_ui_chat
from webapp import create_app
from webapp.api import ui_chat
from webapp.chat_owner import COOKIE, ChatOwner

# -- 5. a chunked body over the cap is refused whole ---------------------------------------------------

PADDED = b" " * 65_536 + b'{"message": "the tail"}'


def post_chunked(client: FlaskClient, body: bytes) -> tuple[int, bytes]:
    response = client.post(
        "/api/chat/events", input_stream=io.BytesIO(body), headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"}
    )
    return response.status_code, response.data


@pytest.mark.parametrize("deadline", ["10", "0"], ids=["with-a-body-deadline", "deadline-off"])
def test_a_chunked_body_over_the_cap_gets_413_and_nothing_of_it_is_parsed(deadline: str) -> None:
    client = create_app(
        {**FAST_SCRIPTED, "WEBAPP_MAX_BODY_BYTES": "1024", "WEBAPP_BODY_TIMEOUT_SECONDS": deadline}, environ={}
    ).test_client()
    status, data = post_chunked(client, PADDED)
    assert status == 413 and b'"request_too_large"' in data, data
    # Negative control: the same body under a larger cap is a valid request, served.
    roomy = create_app({**FAST_SCRIPTED, "WEBAPP_MAX_BODY_BYTES": "131072"}, environ={}).test_client()
    status, data = post_chunked(roomy, PADDED)
    assert status == 200 and b"event: end" in data


# -- 7. converted messages are counted -----------------------------------------------------------------


def steps_body(steps: int) -> dict[str, Any]:
    """Three UI messages; the assistant's has ``steps`` steps of one tool call each: 2 * steps + 2 model messages."""
    parts: list[dict[str, Any]] = []
    for i in range(steps):
        parts += [{"type": "step-start"}, {"type": "tool-a", "toolCallId": f"c{i}", "state": "output-available", "output": ""}]
    return {
        "id": "steps",
        "messages": [
            {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]},
            {"id": "a1", "role": "assistant", "parts": parts},
            {"id": "u2", "role": "user", "parts": [{"type": "text", "text": "again"}]},
        ],
    }


def test_three_ui_messages_that_would_be_18002_model_messages_get_400_quickly(client: FlaskClient) -> None:
    body = json.dumps(steps_body(9000), separators=(",", ":"))
    assert len(body) < 1_048_576  # under WEBAPP_MAX_BODY_BYTES: only the new limits refuse it
    started = time.monotonic()
    response = client.post("/api/ui/chat", data=body, content_type="application/json")
    assert response.status_code == 400 and time.monotonic() - started < 2.0
    assert response.json["error"]["message"] == "messages[1].parts: too many parts (more than 1000)"
    # Under the parts limit, the model messages are what is counted: 400 steps are 802 of them, over 100.
    response = client.post("/api/ui/chat", json=steps_body(400))
    assert response.status_code == 400 and "more than 100 model messages" in response.json["error"]["message"]
    # Negative control: with limits high enough the same three UI messages are 18,002 model messages.
    assert len(parse_ui_chat(steps_body(9000), max_messages=20_000, max_message_chars=100, max_parts=20_000).messages) == 18_002


def test_a_realistic_agent_conversation_still_converts(client: FlaskClient) -> None:
    response = client.post("/api/ui/chat", json=steps_body(40))  # 40 tool steps: 82 model messages, under 100
    assert response.status_code == 200 and b'"type":"finish"' in response.data


# -- 3. with keys off, a chat belongs to the browser that started it -----------------------------------


def ui_body(text: str, chat_id: str = "shared") -> dict[str, Any]:
    return {"id": chat_id, "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": text}]}]}


def ui_text(raw: bytes) -> str:
    frames = [json.loads(b[6:]) for b in raw.decode().split("\n\n") if b.startswith("data: {")]
    return "".join(f.get("delta", "") for f in frames if f["type"] == "text-delta")


def cut_chat(client: FlaskClient, text: str) -> None:
    cut = client.post("/api/ui/chat", json=ui_body(text))
    assert cut.status_code == 200
    next(cut.response)  # the first chunks, then the browser is gone: the chat stays resumable
    cut.close()


def strangers_see(app: Flask) -> tuple[int, str, str]:
    """A browser cuts its chat; a stranger resumes it, then posts to its id. The stranger's resume, and what the browser resumes after."""
    browser, stranger = app.test_client(), app.test_client()
    cut_chat(browser, "my secret question")
    peek = stranger.get("/api/ui/chat/shared/stream")
    stolen = ui_text(peek.data) if peek.status_code == 200 else ""
    stranger.post("/api/ui/chat", json=ui_body("the stranger's question")).close()
    return peek.status_code, stolen, ui_text(browser.get("/api/ui/chat/shared/stream").data)


def test_with_keys_off_a_stranger_gets_204_and_cannot_take_the_chat_over(monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app({**FAST_SCRIPTED, "WEBAPP_SCRIPTED_INTERVAL_MS": "20"}, environ={})
    status, stolen, mine = strangers_see(app)
    assert status == 204 and stolen == ""
    assert "my secret question" in mine and "stranger" not in mine  # the browser's own answer, not the stranger's
    browser = app.test_client()
    posted = browser.post("/api/ui/chat", json=ui_body("hello", "c2"))
    cookie = posted.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/api/ui/chat" in cookie
    assert "Secure" not in cookie  # plain http here; over https it is Secure:
    assert "Secure" in app.test_client().post("/api/ui/chat", json=ui_body("hi", "c3"), base_url="https://localhost").headers["Set-Cookie"]
    assert "Set-Cookie" not in browser.post("/api/ui/chat", json=ui_body("again", "c2")).headers  # it has one: kept
    forged = app.test_client()
    forged.set_cookie(COOKIE, "not-a-browser-id", path="/api/ui/chat")
    assert forged.get("/api/ui/chat/shared/stream").status_code == 204
    # Negative control: ownership off (the old rule: every client the same owner) gives the stranger the answer, and the chat.
    monkeypatch.setattr(ui_chat, "chat_owner", lambda mint: ChatOwner("anyone"))
    status, stolen, mine = strangers_see(create_app({**FAST_SCRIPTED, "WEBAPP_SCRIPTED_INTERVAL_MS": "20"}, environ={}))
    assert status == 200 and "my secret question" in stolen
    assert "stranger" in mine  # the stranger's post became the chat's stream
