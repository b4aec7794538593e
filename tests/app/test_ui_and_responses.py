"""The AI SDK's chat endpoint and OpenAI's Responses API, through Flask's test client on the scripted model.

Real clients (the `ai` package in Node, the openai SDK, ChatOpenAI) against
a real gunicorn are in e2e/test_ai_sdk.py and e2e/test_responses_api.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import FAST_SCRIPTED
from uncut.scripted import ScriptedChatModel
from webapp import create_app

KEY_A = "key-a-0123456789abcdef"
KEY_B = "key-b-0123456789abcdef"


def app_with(**settings: str) -> Flask:
    return create_app({**FAST_SCRIPTED, **settings}, environ={})


def chat_body(text: str = "What time is it?", chat_id: str = "chat-1") -> dict[str, Any]:
    return {
        "id": chat_id,
        "trigger": "submit-message",
        "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": text}]}],
    }


def chunks(raw: bytes) -> list[Any]:
    out = []
    for block in raw.decode().split("\n\n"):
        if block.startswith("data: "):
            payload = block[len("data: ") :]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def test_ui_chat_streams_the_protocol_with_its_headers(client: FlaskClient) -> None:
    response = client.post("/api/ui/chat", json=chat_body())
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert response.headers["X-Accel-Buffering"] == "no" and response.headers["Cache-Control"] == "no-cache"
    got = chunks(response.data)
    assert got[0]["type"] == "start" and got[0]["messageId"].startswith("msg_s_")
    assert got[-2:] == [{"type": "finish", "finishReason": "stop"}, "[DONE]"]
    assert "".join(c["delta"] for c in got if isinstance(c, dict) and c["type"] == "text-delta").startswith("You asked")


def test_ui_chat_with_the_agent_streams_tool_parts(tmp_path: Path) -> None:
    client = app_with(WEBAPP_AGENT_SLOW_TOOL_SECONDS="0", WEBAPP_THREAD_STORE=f"sqlite:///{tmp_path}/threads.db").test_client()
    got = chunks(client.post("/api/ui/chat?agent=1", json=chat_body("What time is it?")).data)
    kinds = [c["type"] for c in got if isinstance(c, dict)]
    assert "tool-input-start" in kinds and "tool-input-available" in kinds and "tool-output-available" in kinds
    assert kinds.count("start-step") == 2 and kinds[-1] == "finish"


def test_resume_replays_a_stream_nobody_has_whole_and_204_once_one_has() -> None:
    client = app_with(WEBAPP_SCRIPTED_INTERVAL_MS="20").test_client()
    cut = client.post("/api/ui/chat", json=chat_body(chat_id="c-9"))
    head = next(cut.response)  # the first chunks, then the client is gone
    cut.close()
    replay = client.get("/api/ui/chat/c-9/stream")
    assert replay.status_code == 200 and replay.headers["x-vercel-ai-ui-message-stream"] == "v1"
    whole = chunks(replay.data)
    assert chunks(head)[0] == whole[0]  # the same message id: the client swaps the message in place
    assert whole[-2:] == [{"type": "finish", "finishReason": "stop"}, "[DONE]"]
    assert client.get("/api/ui/chat/c-9/stream").status_code == 204  # delivered whole: nothing to resume
    unread = client.post("/api/ui/chat", json=chat_body("another question", chat_id="c-9"))  # the chat's new stream...
    assert chunks(client.get("/api/ui/chat/c-9/stream").data)[0]["messageId"] != whole[0]["messageId"]  # ...is the one resumed
    unread.close()
    assert client.get("/api/ui/chat/c-9/stream").status_code == 204
    assert client.get("/api/ui/chat/never-seen/stream").status_code == 204
    bad = client.get("/api/ui/chat/a..b%20c/stream")
    assert bad.status_code == 400 and bad.json["error"]["type"] == "invalid_request"


def test_one_keys_chat_is_not_another_keys() -> None:
    client = app_with(WEBAPP_API_KEYS=f"{KEY_A},{KEY_B}").test_client()
    a, b = {"Authorization": f"Bearer {KEY_A}"}, {"Authorization": f"Bearer {KEY_B}"}
    cut = client.post("/api/ui/chat", json=chat_body(chat_id="shared"), headers=a)
    next(cut.response)
    cut.close()  # cut: the stream stays resumable
    assert client.get("/api/ui/chat/shared/stream", headers=b).status_code == 204
    assert client.get("/api/ui/chat/shared/stream", headers=a).status_code == 200
    assert client.get("/api/ui/chat/shared/stream").status_code == 401


def test_ui_chat_refuses_malformed_requests_naming_the_field(client: FlaskClient) -> None:
    for body, word in [
        ({"messages": []}, "id"),
        (chat_body() | {"trigger": "x"}, "trigger"),
        ({"id": "c", "messages": [{"role": "user"}]}, "parts"),
    ]:
        response = client.post("/api/ui/chat", json=body)
        assert response.status_code == 400 and word in response.json["error"]["message"]
    assert client.post("/api/ui/chat", data="{", content_type="application/json").status_code == 400
    assert client.post("/api/ui/chat", data="x", content_type="text/plain").status_code == 415


def test_a_failing_model_ends_the_ui_stream_with_an_error_chunk() -> None:
    client = create_app(FAST_SCRIPTED, environ={}, chat_model=ScriptedChatModel(ttft=0, interval=0, fail_at=2)).test_client()
    got = chunks(client.post("/api/ui/chat", json=chat_body()).data)
    assert got[-2]["type"] == "error" and "failed" in got[-2]["errorText"] and "Scripted" not in got[-2]["errorText"]
    assert got[-1] == "[DONE]"


def test_responses_stream_and_json(client: FlaskClient) -> None:
    streamed = client.post("/v1/responses", json={"model": "x", "input": "hi", "stream": True})
    assert streamed.headers["Content-Type"].startswith("text/event-stream")
    names = [line[len("event: ") :] for line in streamed.data.decode().splitlines() if line.startswith("event: ")]
    assert names[:2] == ["response.created", "response.in_progress"] and names[-1] == "response.completed"
    whole = client.post("/v1/responses", json={"model": "x", "input": "hi"})
    assert whole.status_code == 200 and whole.json["status"] == "completed" and whole.json["model"] == "x"
    assert whole.json["output"][0]["content"][0]["text"].startswith("You asked")


def test_responses_400s_are_openai_shaped(client: FlaskClient) -> None:
    response = client.post("/v1/responses", json={"model": "x", "input": "hi", "background": True})
    assert response.status_code == 400
    assert response.json == {
        "error": {
            "message": "Unsupported parameter: 'background'.",
            "type": "invalid_request_error",
            "param": "background",
            "code": "unsupported_parameter",
        }
    }
    assert client.post("/v1/responses", data="nope", content_type="application/json").json["error"]["type"] == "invalid_request_error"


def test_a_failed_non_streaming_response_is_an_error_status_that_says_whether_to_retry() -> None:
    client = create_app(FAST_SCRIPTED, environ={}, chat_model=ScriptedChatModel(ttft=0, interval=0, fail_at=1)).test_client()
    response = client.post("/v1/responses", json={"model": "x", "input": "hi"})
    assert response.status_code == 502
    assert response.json["error"]["type"] == "upstream_error" and response.headers["x-should-retry"] == "true"
    streamed = client.post("/v1/responses", json={"model": "x", "input": "hi", "stream": True}).data.decode()
    assert "event: response.failed" in streamed and "response.completed" not in streamed
