"""Streams belong to their key, every client gets its share, and browsers get what they need.

Flask's test client, the scripted model: two API keys that cannot see each
other's streams; admission that counts runs (``POST /api/streams``
included) per worker and per key or address; diagnostics bounded and
switchable; security headers, the cross-site refusal and CORS. The same
over real sockets, with Redis and through a browser: e2e/test_isolation.py.
"""

from __future__ import annotations

import runpy
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import FAST_SCRIPTED, NO_LINE
from tests.support.servers import GUNICORN_CONF
from webapp import create_app

KEY_A = "key-a-0123456789abcdef"
KEY_B = "key-b-0123456789abcdef"
A = {"Authorization": f"Bearer {KEY_A}"}
B = {"Authorization": f"Bearer {KEY_B}"}


def app_with(**settings: str) -> Flask:
    return create_app({**FAST_SCRIPTED, **settings}, environ={})


@pytest.fixture
def two_keys() -> FlaskClient:
    return app_with(WEBAPP_API_KEYS=f"{KEY_A},{KEY_B}", WEBAPP_SCRIPTED_INTERVAL_MS="20").test_client()


def test_another_keys_stream_is_the_same_404_as_an_unknown_one(two_keys: FlaskClient) -> None:
    started = two_keys.post("/api/streams", json={"message": "secret"}, headers=A)
    assert started.status_code == 201
    stream_id = started.json["stream_id"]
    unknown = two_keys.get("/api/streams/s_0000000000000000", headers=B)
    for method, path, headers in [
        ("GET", f"/api/streams/{stream_id}", {}),
        ("GET", f"/api/streams/{stream_id}/events", {}),
        ("GET", f"/api/streams/{stream_id}/events", {"Last-Event-ID": f"{stream_id}:0"}),
        ("GET", "/api/chat/events", {"Last-Event-ID": f"{stream_id}:0"}),
        ("DELETE", f"/api/streams/{stream_id}", {}),
    ]:
        response = two_keys.open(path, method=method, headers={**B, **headers})
        assert response.status_code == 404 and response.json["error"] == {
            **unknown.json["error"],
            "message": unknown.json["error"]["message"].replace("s_0000000000000000", stream_id),
        }, (method, path)
    # The control: the key that started it can do all of it.
    assert two_keys.get(f"/api/streams/{stream_id}", headers=A).json["status"] in ("running", "completed")
    events = two_keys.get(f"/api/streams/{stream_id}/events", headers=A)
    assert b"event: end" in events.data and b"secret" in events.data
    assert two_keys.delete(f"/api/streams/{stream_id}", headers=A).status_code == 200


def test_posted_runs_take_admission_slots() -> None:
    client = app_with(
        WEBAPP_MAX_CONCURRENT_STREAMS="2", WEBAPP_SCRIPTED_INTERVAL_MS="200", WEBAPP_RESUME_GRACE_SECONDS="30", **NO_LINE
    ).test_client()
    statuses = [client.post("/api/streams", json={"message": "x"}).status_code for _ in range(20)]
    assert statuses.count(201) == 2 and statuses.count(503) == 18
    refused = client.post("/api/chat/events", json={"message": "x"})
    assert refused.status_code == 503 and refused.headers["Retry-After"] and refused.json["error"]["type"] == "overloaded"


def test_each_key_gets_its_share_and_openai_clients_get_openai_errors() -> None:
    client = app_with(
        WEBAPP_API_KEYS=f"{KEY_A},{KEY_B}",
        WEBAPP_MAX_STREAMS_PER_KEY="2",
        WEBAPP_SCRIPTED_INTERVAL_MS="200",
        WEBAPP_RESUME_GRACE_SECONDS="30",
    ).test_client()
    assert [client.post("/api/streams", json={"message": "x"}, headers=A).status_code for _ in range(3)] == [201, 201, 429]
    over = client.post(
        "/v1/chat/completions", json={"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]}, headers=A
    )
    assert over.status_code == 429 and over.json["error"]["type"] == "too_many_streams" and "param" in over.json["error"]
    assert client.post("/api/streams", json={"message": "x"}, headers=B).status_code == 201  # B is not held back by A


def test_with_keys_off_the_share_is_per_address_from_the_configured_header_only() -> None:
    client = app_with(
        WEBAPP_MAX_STREAMS_PER_KEY="1", WEBAPP_CLIENT_ADDRESS_HEADER="X-Forwarded-For", WEBAPP_SCRIPTED_TTFT_MS="5000"
    ).test_client()
    first = {"X-Forwarded-For": "203.0.113.9, 10.0.0.1"}  # the last entry is the one the trusted proxy added
    assert client.get("/api/diagnostics/stream", headers=first, buffered=False).status_code == 200
    assert client.get("/api/diagnostics/stream", headers={"X-Forwarded-For": "198.51.100.7, 10.0.0.1"}).status_code == 429
    assert client.get("/api/diagnostics/stream", headers={"X-Forwarded-For": "10.0.0.2"}, buffered=False).status_code == 200
    # Without the setting, a client's own header is not believed: everyone is the peer address.
    plain = app_with(WEBAPP_MAX_STREAMS_PER_KEY="1", WEBAPP_SCRIPTED_TTFT_MS="5000").test_client()
    assert plain.get("/api/diagnostics/stream", headers={"X-Forwarded-For": "1.1.1.1"}, buffered=False).status_code == 200
    assert plain.get("/api/diagnostics/stream", headers={"X-Forwarded-For": "2.2.2.2"}).status_code == 429


@pytest.mark.parametrize("query", ["tokens=10000&interval_ms=0", "tokens=1000&interval_ms=60000", "ttft_ms=600000&pause_s=10"])
def test_diagnostics_are_bounded_to_a_deployment_check(query: str) -> None:
    response = app_with().test_client().get(f"/api/diagnostics/stream?{query}")
    assert response.status_code == 400 and response.json["error"]["type"] == "invalid_request"


def test_diagnostics_can_be_switched_off() -> None:
    assert app_with(WEBAPP_DIAGNOSTICS="false").test_client().get("/api/diagnostics/stream").status_code == 404


# -- browsers ---------------------------------------------------------------------------------


def test_every_response_has_security_headers_and_the_page_a_nonce_policy() -> None:
    client = app_with().test_client()
    page = client.get("/")
    policy = page.headers["Content-Security-Policy"]
    nonce = policy.split("'nonce-")[1].split("'")[0]
    assert f'<script nonce="{nonce}">' in page.get_data(as_text=True) and "frame-ancestors 'none'" in policy
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/").headers["Content-Security-Policy"] != policy  # a fresh nonce per response
    for response in (client.get("/healthz"), client.post("/api/chat", json={}), client.get("/nope")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"


def test_the_page_needs_no_key_but_the_api_does() -> None:
    client = app_with(WEBAPP_API_KEYS=KEY_A).test_client()
    assert client.get("/").status_code == 200
    assert client.post("/api/chat/events", json={"message": "x"}).status_code == 401


CROSS_SITE: list[dict[str, str]] = [
    {"Sec-Fetch-Site": "cross-site"},  # an <img> or a link on another site: no Origin at all
    {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
    {"Sec-Fetch-Site": "same-site", "Origin": "https://other.localhost"},
    {"Origin": "https://evil.example"},  # an older browser: no Sec-Fetch-Site
    {"Origin": "null"},  # a sandboxed frame or a file:// page
]


@pytest.mark.parametrize("headers", CROSS_SITE)
def test_other_sites_cannot_make_a_browser_start_a_generation(headers: dict[str, str]) -> None:
    client = app_with().test_client()
    for response in (
        client.get("/api/chat/events?message=x", headers=headers),
        client.post("/api/chat/events", json={"message": "x"}, headers=headers),
        client.get("/api/diagnostics/stream", headers=headers),
    ):
        assert response.status_code == 403 and response.json["error"]["type"] == "forbidden_origin"
    assert client.get("/", headers=headers).status_code == 200  # a link to the page is fine


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"},
        {"Sec-Fetch-Site": "none"},
        {"Origin": "http://localhost"},
    ],
)
def test_the_page_itself_and_clients_that_are_not_browsers_are_not_refused(headers: dict[str, str]) -> None:
    response = app_with().test_client().post("/api/chat/events", json={"message": "x"}, headers=headers)
    assert response.status_code == 200 and b"event: end" in response.data


def test_an_allowed_origin_gets_cors_and_its_preflight_answered() -> None:
    client = app_with(WEBAPP_CORS_ORIGINS="https://app.example.com", WEBAPP_API_KEYS=KEY_A).test_client()
    origin = {"Origin": "https://app.example.com", "Sec-Fetch-Site": "cross-site"}
    preflight = client.options(
        "/api/chat/events",
        headers={**origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"},
    )
    assert preflight.status_code == 204  # no key needed: a preflight never carries one
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert (
        "Authorization" in preflight.headers["Access-Control-Allow-Headers"] and "POST" in preflight.headers["Access-Control-Allow-Methods"]
    )
    streamed = client.post("/api/chat/events", json={"message": "x"}, headers={**origin, **A})
    assert streamed.status_code == 200 and streamed.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "Origin" in streamed.headers.get_all("Vary")
    refused = client.options("/api/chat/events", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert refused.status_code == 403 and "Access-Control-Allow-Origin" not in refused.headers


def test_the_access_log_shows_no_stream_ids_and_no_prompts() -> None:
    redact = runpy.run_path(str(GUNICORN_CONF))["redact"]
    assert redact("GET /api/streams/s_0123456789abcdef/events?last_event_id=s_0123456789abcdef:7 HTTP/1.1") == (
        "GET /api/streams/<stream>/events?last_event_id=<stream>:7 HTTP/1.1"
    )
    assert redact("GET /api/chat/events?heartbeat_events=1&message=my%20secret%20plan HTTP/1.1") == (
        "GET /api/chat/events?heartbeat_events=1&message=<prompt> HTTP/1.1"
    )


def test_a_text_and_an_openai_stream_hold_a_slot_for_their_run() -> None:
    app = app_with(WEBAPP_MAX_CONCURRENT_STREAMS="1", WEBAPP_SCRIPTED_INTERVAL_MS="100", WEBAPP_ON_DISCONNECT="cancel", **NO_LINE)
    client = app.test_client()
    held: Any = client.post("/api/chat/stream", json={"message": "x"}, buffered=False)
    next(held.response)
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    assert client.post("/v1/chat/completions", json=body).status_code == 503
    held.close()
