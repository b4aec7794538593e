"""The app through Flask's test client: endpoints, streaming order, and bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import FAST_SCRIPTED
from uncut.relay import StreamAborted
from uncut.scripted import ScriptedChatModel
from uncut.sse import ServerSentEvent, parse_stream
from webapp import ConfigError, create_app


def sse_events(body: bytes) -> list[ServerSentEvent]:
    return [item for item in parse_stream([body]) if isinstance(item, ServerSentEvent)]


def test_healthz_reports_provider_model_and_worker(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "provider": "scripted", "model": "scripted", "worker": "dev"}


def test_chat_returns_the_whole_answer(client: FlaskClient) -> None:
    response = client.post(
        "/api/chat", json={"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is SSE?"}]}
    )
    assert response.status_code == 200
    body = response.json
    assert body["text"].startswith('You asked: "What is SSE?".') and body["finish_reason"] == "stop"
    assert body["usage"]["output_tokens"] == len(body["text"].split())


def test_sse_stream_follows_the_protocol(client: FlaskClient) -> None:
    response = client.post("/api/chat/events", json={"message": "Tell me about heartbeats"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-cache" and response.headers["X-Accel-Buffering"] == "no"
    assert "Content-Length" not in response.headers and "Content-Encoding" not in response.headers
    assert response.data.startswith(b"retry: 3000\n")
    events = sse_events(response.data)
    kinds = [e.event for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and set(kinds[1:-1]) == {"token"}
    stream_id = events[0].json()["stream_id"]
    assert [e.id for e in events] == [f"{stream_id}:{n}" for n in range(len(events))]
    assert "".join(e.json()["text"] for e in events[1:-1]).startswith('You asked: "Tell me about heartbeats".')


def test_get_events_takes_the_message_from_the_query(client: FlaskClient) -> None:
    events = sse_events(client.get("/api/chat/events?message=hello%20there").data)
    assert events[1].json()["text"] == "You" and events[-1].event == "end"


def test_text_stream_is_tokens_only(client: FlaskClient) -> None:
    response = client.post("/api/chat/stream", json={"message": "plain please"})
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.data.decode().startswith('You asked: "plain please".')


def test_first_token_arrives_before_the_model_has_produced_the_last() -> None:
    produced: list[str] = []

    class CountingModel(ScriptedChatModel):
        def _stream(self, *args: Any, **kwargs: Any):  # type: ignore[override]
            for chunk in super()._stream(*args, **kwargs):
                produced.append(chunk.text)
                yield chunk

    model = CountingModel(tokens=20, ttft=0, interval=0.05)
    client = create_app(FAST_SCRIPTED, environ={}, chat_model=model).test_client()
    response = client.post("/api/chat/events", json={"message": "hi"}, buffered=False)
    for chunk in response.response:
        if b"event: token" in chunk:
            break
    assert 1 <= len(produced) < 20, f"the model had produced {len(produced)} of 20 tokens"
    response.close()


def test_diagnostics_stream_follows_its_parameters(client: FlaskClient) -> None:
    events = sse_events(client.get("/api/diagnostics/stream?tokens=7&interval_ms=0").data)
    assert [e.event for e in events].count("token") == 7 and events[-1].event == "end"
    assert events[0].json()["model"] == "diagnostics"


def test_diagnostics_failure_gives_an_error_event(client: FlaskClient) -> None:
    events = sse_events(client.get("/api/diagnostics/stream?tokens=5&interval_ms=0&fail_at=3").data)
    assert [e.event for e in events] == ["start", "token", "token", "token", "error"]
    assert events[-1].json()["error"]["type"] == "upstream_error"


def test_text_stream_failure_raises_into_the_server_to_truncate() -> None:
    model = ScriptedChatModel(tokens=5, ttft=0, interval=0, fail_at=2)
    client = create_app(FAST_SCRIPTED, environ={}, chat_model=model).test_client()
    response = client.post("/api/chat/stream", json={"message": "x"}, buffered=False)
    with pytest.raises(StreamAborted):
        b"".join(response.response)


def test_a_bad_setting_stops_the_factory_with_the_variable_named() -> None:
    with pytest.raises(ConfigError, match="WEBAPP_HEARTBEAT_SECONDS"):
        create_app({"WEBAPP_HEARTBEAT_SECONDS": "often"}, environ={})


LONG = "x" * 40_000
BAD_REQUESTS: list[tuple[str, str, dict[str, Any], int, str]] = [
    # (method, path, request kwargs, status, error type)
    ("POST", "/api/chat", {"data": "{not json", "content_type": "application/json"}, 400, "invalid_json"),
    ("POST", "/api/chat", {"data": "", "content_type": "application/json"}, 400, "invalid_json"),
    ("POST", "/api/chat", {"data": "message=hi", "content_type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
    ("POST", "/api/chat", {"data": "hi"}, 415, "unsupported_media_type"),
    ("POST", "/api/chat", {"json": []}, 400, "invalid_request"),
    ("POST", "/api/chat", {"json": "hello"}, 400, "invalid_request"),
    ("POST", "/api/chat", {"json": {}}, 400, "invalid_request"),
    ("POST", "/api/chat", {"json": {"message": ""}}, 400, "invalid_request"),
    ("POST", "/api/chat", {"json": {"message": "   "}}, 400, "invalid_request"),
    ("POST", "/api/chat", {"json": {"message": None}}, 400, "invalid_request"),
    ("POST", "/api/chat", {"json": {"message": 42}}, 400, "invalid_request"),
    ("POST", "/api/chat", {"json": {"message": ["a"]}}, 400, "invalid_request"),
    ("POST", "/api/chat", {"json": {"message": "hi", "messages": []}}, 400, "invalid_request"),
    ("POST", "/api/chat", {"json": {"message": LONG}}, 400, "invalid_request"),
    ("POST", "/api/chat/events", {"json": {"messages": []}}, 400, "invalid_request"),
    ("POST", "/api/chat/events", {"json": {"messages": "hi"}}, 400, "invalid_request"),
    ("POST", "/api/chat/events", {"json": {"messages": [{"role": "robot", "content": "hi"}]}}, 400, "invalid_request"),
    ("POST", "/api/chat/events", {"json": {"messages": [{"role": "user"}]}}, 400, "invalid_request"),
    ("POST", "/api/chat/events", {"json": {"messages": [{"role": "user", "content": {"a": 1}}]}}, 400, "invalid_request"),
    ("POST", "/api/chat/events", {"json": {"messages": ["hi"]}}, 400, "invalid_request"),
    ("POST", "/api/chat/events", {"json": {"messages": [{"role": "assistant", "content": "hi"}]}}, 400, "invalid_request"),
    ("POST", "/api/chat/events", {"json": {"messages": [{"role": "user", "content": "x"}] * 101}}, 400, "invalid_request"),
    ("POST", "/api/chat/stream", {"data": b"\xff\xfe{", "content_type": "application/json"}, 400, "invalid_json"),
    ("POST", "/api/chat/stream", {"json": {"message": False}}, 400, "invalid_request"),
    ("POST", "/api/chat/stream", {"data": "x" * 1_100_000, "content_type": "application/json"}, 413, "request_too_large"),
    ("GET", "/api/chat/events", {}, 400, "invalid_request"),
    ("POST", "/api/agent/events", {"json": {}}, 400, "invalid_request"),
    ("POST", "/api/agent/events", {"json": {"messages": [{"role": "tool", "content": "x"}]}}, 400, "invalid_request"),
    ("POST", "/api/agent/events", {"data": "{", "content_type": "application/json"}, 400, "invalid_json"),
    ("POST", "/api/agent/events", {"data": "hi"}, 415, "unsupported_media_type"),
    ("GET", "/api/agent/events", {}, 400, "invalid_request"),
    ("GET", "/api/agent/events", {"headers": {"Last-Event-ID": "nonsense"}}, 400, "invalid_request"),
    ("GET", "/api/chat/events?message=", {}, 400, "invalid_request"),
    ("GET", "/api/chat", {}, 405, "method_not_allowed"),
    ("DELETE", "/api/chat/events", {}, 405, "method_not_allowed"),
    ("PUT", "/healthz", {}, 405, "method_not_allowed"),
    ("GET", "/no/such/route", {}, 404, "not_found"),
    ("GET", "/api/diagnostics/stream?pause_s=601", {}, 400, "invalid_request"),
    ("GET", "/api/diagnostics/stream?tokens=0", {}, 400, "invalid_request"),
    ("GET", "/api/diagnostics/stream?tokens=-5", {}, 400, "invalid_request"),
    ("GET", "/api/diagnostics/stream?tokens=1e9", {}, 400, "invalid_request"),
    ("GET", "/api/diagnostics/stream?interval_ms=abc", {}, 400, "invalid_request"),
    ("GET", "/api/diagnostics/stream?interval_ms=60001", {}, 400, "invalid_request"),
    ("GET", "/api/diagnostics/stream?ttft_ms=600001", {}, 400, "invalid_request"),
    ("GET", "/api/diagnostics/stream?fail_at=x", {}, 400, "invalid_request"),
    ("GET", "/api/diagnostics/stream?bogus=1", {}, 400, "invalid_request"),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "error_type"), BAD_REQUESTS)
def test_bad_input_gets_a_json_error(client: FlaskClient, method: str, path: str, kwargs: dict, status: int, error_type: str) -> None:
    response = client.open(path, method=method, **kwargs)
    assert response.status_code == status, response.data[:300]
    assert response.headers["Content-Type"] == "application/json"
    body = json.loads(response.data)
    assert body["error"]["type"] == error_type and body["error"]["message"]
    assert "Traceback" not in response.get_data(as_text=True)


def test_wrong_method_says_what_is_allowed(client: FlaskClient) -> None:
    assert client.get("/api/chat").headers["Allow"] == "OPTIONS, POST"


def test_a_provider_failure_on_the_one_answer_is_a_json_502_without_details() -> None:
    class BrokenModel(ScriptedChatModel):
        def _generate(self, *args: Any, **kwargs: Any):  # type: ignore[override]
            raise KeyError("internal secret")

        def _stream(self, *args: Any, **kwargs: Any):  # type: ignore[override]
            raise KeyError("internal secret")  # the one answer is a run: it streams from the model

    app = create_app(FAST_SCRIPTED, environ={}, chat_model=BrokenModel())
    response = app.test_client().post("/api/chat", json={"message": "x"})
    assert response.status_code == 502
    assert "secret" not in response.get_data(as_text=True) and response.json["error"]["type"] == "upstream_error"
