"""API keys, per-worker stream admission, and the OpenAI surface through Flask's test client."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from werkzeug.test import EnvironBuilder

from tests.conftest import FAST_SCRIPTED, NO_LINE
from webapp import ConfigError, create_app

KEY = "k-0123456789abcdef"
OTHER = "k-fedcba9876543210"


@pytest.fixture
def locked() -> FlaskClient:
    return create_app({**FAST_SCRIPTED, "WEBAPP_API_KEYS": f"{KEY},{OTHER}"}, environ={}).test_client()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {KEY}"},
        {"Authorization": "Bearer wrong-key-0000000000"},
        {"Authorization": f"Bearer {KEY}x"},
        {"Authorization": f"bearer{KEY}"},
    ],
    ids=["none", "empty", "no-key", "blank-key", "basic", "wrong", "longer", "no-space"],
)
def test_requests_without_a_valid_key_get_401(locked: FlaskClient, headers: dict[str, str]) -> None:
    for method, path in (("POST", "/api/chat/events"), ("GET", "/v1/models"), ("GET", "/api/diagnostics/stream"), ("GET", "/nope")):
        response = locked.open(path, method=method, json={"message": "x"}, headers=headers)
        assert response.status_code == 401, (path, headers)
        assert response.json["error"]["type"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_every_configured_key_works_and_healthz_stays_open(locked: FlaskClient) -> None:
    assert locked.get("/healthz").status_code == 200
    for key in (KEY, OTHER):
        assert locked.get("/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert locked.get("/v1/models", headers={"Authorization": f"bearer   {key}"}).status_code == 200


def test_keys_come_from_a_file_too(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# team keys\n{KEY}\n\n")
    client = create_app({**FAST_SCRIPTED, "WEBAPP_API_KEYS_FILE": str(path)}, environ={}).test_client()
    assert client.get("/v1/models").status_code == 401
    assert client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"WEBAPP_API_KEYS": "short"}, "at least 16"),
        ({"WEBAPP_API_KEYS": " , "}, "no keys"),
        ({"WEBAPP_API_KEYS_FILE": "/nonexistent/keys"}, "cannot read"),
    ],
)
def test_bad_key_settings_stop_start_up(config: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        create_app({**FAST_SCRIPTED, **config}, environ={})


def test_keys_never_reach_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    client = create_app({**FAST_SCRIPTED, "WEBAPP_API_KEYS": KEY, "WEBAPP_LOG_LEVEL": "DEBUG"}, environ={}).test_client()
    client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"})
    client.get("/v1/models", headers={"Authorization": "Bearer guessed-key-00000000"})
    assert KEY not in caplog.text and "guessed-key" not in caplog.text


@pytest.mark.parametrize("gate", ["true", "false"])
def test_with_no_line_streams_beyond_the_limit_get_an_immediate_503(gate: str) -> None:
    app = create_app(
        {
            **FAST_SCRIPTED,
            "WEBAPP_MAX_CONCURRENT_STREAMS": "1",
            "WEBAPP_SCRIPTED_INTERVAL_MS": "50",
            "WEBAPP_ADMISSION_START_BUDGET_MS": "0",
            "WEBAPP_ADMISSION_GATE": gate,
        },
        environ={},
    )
    client = app.test_client()
    first = client.post("/api/chat/events", json={"message": "one"}, buffered=False)
    next(iter(first.response))  # the first stream is open
    for path, body in (
        ("/api/chat/events", {"message": "two"}),
        ("/api/chat/stream", {"message": "two"}),
        ("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}),
        ("/api/chat", {"message": "not a stream: a run all the same"}),
    ):
        busy = client.post(path, json=body)
        assert busy.status_code == 503 and busy.json["error"]["type"] == "overloaded"
        assert busy.headers["Retry-After"] == "3"
    first.close()  # the client leaves; its run keeps the slot through the resume grace, then ends
    limiter = app.extensions["uncut"].streams.limiter
    deadline = time.monotonic() + 10
    while limiter.active and time.monotonic() < deadline:
        time.sleep(0.05)
    again = client.post("/api/chat/events", json={"message": "three"})
    assert again.status_code == 200 and b"event: end" in again.data


def test_a_response_never_iterated_frees_its_runs_slot() -> None:
    app = create_app({**FAST_SCRIPTED, "WEBAPP_MAX_CONCURRENT_STREAMS": "1"}, environ={})
    for _ in range(3):
        environ = EnvironBuilder(method="POST", path="/api/chat/events", json={"message": "x"}).get_environ()
        statuses: list[str] = []
        body = app(environ, lambda status, headers, exc_info=None: statuses.append(status))
        assert statuses == ["200 OK"]
        body.close()  # the server gave up before the first byte: the run never started, and is gone


def test_a_dropped_client_keeps_its_runs_slot_through_the_grace_but_not_under_cancel() -> None:
    for policy, expected in (("continue", 503), ("cancel", 200)):
        app = create_app(
            {
                **FAST_SCRIPTED,
                "WEBAPP_MAX_CONCURRENT_STREAMS": "1",
                "WEBAPP_ON_DISCONNECT": policy,
                **NO_LINE,
                "WEBAPP_SCRIPTED_INTERVAL_MS": "200",
            },
            environ={},
        )
        client = app.test_client()
        first = client.post("/api/chat/events", json={"message": "x"}, buffered=False)
        next(first.response)  # the first bytes arrived; then the client leaves
        first.close()
        if policy == "cancel":  # a thread stops at the model's next token (200 ms here), and its slot with it
            limiter = app.extensions["uncut"].streams.limiter
            deadline = time.monotonic() + 5
            while limiter.active and time.monotonic() < deadline:
                time.sleep(0.01)
        assert client.post("/api/chat/events", json={"message": "y"}, buffered=False).status_code == expected, policy


def test_openai_surface_streams_and_answers(client: FlaskClient) -> None:
    body = {"model": "any", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    whole = client.post("/v1/chat/completions", json=body).json
    assert whole["object"] == "chat.completion" and whole["choices"][0]["finish_reason"] == "length"
    assert whole["usage"]["completion_tokens"] == 3 and whole["model"] == "any"
    streamed = client.post("/v1/chat/completions", json={**body, "stream": True}).data.decode()
    lines = [line for line in streamed.split("\n\n") if line]
    assert lines[-1] == "data: [DONE]" and '"role":"assistant"' in lines[0]
    assert "usage" not in streamed, "usage only with stream_options.include_usage"
    assert client.get("/v1/models").json["data"][0]["id"] == "scripted"


def test_openai_stop_sequences_reach_the_model(client: FlaskClient) -> None:
    body = {"model": "any", "messages": [{"role": "user", "content": "hi"}], "stop": ["stream"]}
    text = client.post("/v1/chat/completions", json=body).json["choices"][0]["message"]["content"]
    assert "stream" not in text and text.startswith('You asked: "hi".')
