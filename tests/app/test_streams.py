"""Resume, status, cancel and expiry through Flask's test client (memory store)."""

from __future__ import annotations

import time

import pytest
from flask.testing import FlaskClient

from tests.conftest import FAST_SCRIPTED
from uncut.sse import ServerSentEvent, parse_stream
from webapp import create_app


def events(body: bytes) -> list[ServerSentEvent]:
    return [e for e in parse_stream([body]) if isinstance(e, ServerSentEvent)]


def app_client(**config: str) -> FlaskClient:
    return create_app({**FAST_SCRIPTED, **config}, environ={}).test_client()


def cut_after(client: FlaskClient, writes: int) -> list[ServerSentEvent]:
    response = client.post("/api/chat/events", json={"message": "hello"}, buffered=False)
    chunks = iter(response.response)
    received = [next(chunks) for _ in range(writes)]
    response.close()
    return events(b"".join(received))


def test_a_resume_replays_from_the_last_event_and_ends() -> None:
    client = app_client()
    first = cut_after(client, 3)
    rest = events(client.get("/api/chat/events", headers={"Last-Event-ID": first[-1].id}).data)
    seqs = [int(e.id.split(":")[1]) for e in first + rest]
    assert seqs == list(range(len(seqs))) and rest[-1].event == "end"
    by_query = events(client.get(f"/api/streams/{first[0].json()['stream_id']}/events?last_event_id={first[-1].id}").data)
    assert [e.id for e in by_query] == [e.id for e in rest]


def test_a_client_that_has_the_end_gets_204_so_eventsource_stops() -> None:
    client = app_client()
    whole = events(client.post("/api/chat/events", json={"message": "x"}).data)
    assert client.get("/api/chat/events", headers={"Last-Event-ID": whole[-1].id}).status_code == 204


@pytest.mark.parametrize("bad", ["nonsense", "s_123:4", "s_0123456789abcdef", "s_0123456789abcdef:-1", "s_0123456789abcdef:x"])
def test_a_malformed_last_event_id_is_400(bad: str) -> None:
    response = app_client().get("/api/chat/events", headers={"Last-Event-ID": bad})
    assert response.status_code == 400 and "Last-Event-ID" in response.json["error"]["message"]


def test_an_unknown_stream_is_404_and_names_the_fix() -> None:
    response = app_client().get("/api/chat/events", headers={"Last-Event-ID": "s_0123456789abcdef:3"})
    assert response.status_code == 404 and response.json["error"]["type"] == "stream_not_found"
    assert "WEBAPP_STREAM_STORE=redis" in response.json["error"]["message"]


def test_a_finished_stream_expires_after_its_ttl() -> None:
    client = app_client(WEBAPP_STREAM_TTL_SECONDS="1")
    whole = events(client.post("/api/chat/events", json={"message": "x"}).data)
    stream_id = whole[0].json()["stream_id"]
    assert client.get(f"/api/streams/{stream_id}").json["status"] == "completed"
    time.sleep(1.2)
    assert client.get(f"/api/streams/{stream_id}").status_code == 404


def test_start_without_a_reader_follow_inspect_and_cancel() -> None:
    client = app_client(WEBAPP_SCRIPTED_INTERVAL_MS="50")
    created = client.post("/api/streams", json={"message": "detached"})
    assert created.status_code == 201 and created.headers["Location"] == created.json["events_url"]
    stream_id = created.json["stream_id"]
    assert client.get(f"/api/streams/{stream_id}").json["status"] == "running"
    cancelled = client.delete(f"/api/streams/{stream_id}")
    assert cancelled.json["status"] == "cancelled"
    tail = events(client.get(created.json["events_url"]).data)
    assert tail[0].event == "start" and tail[-1].event == "error" and tail[-1].json()["error"]["type"] == "cancelled"
    assert client.delete("/api/streams/not-a-stream").status_code == 404


def test_a_started_stream_nobody_reads_stops_after_the_grace_period() -> None:
    client = app_client(WEBAPP_SCRIPTED_INTERVAL_MS="50", WEBAPP_RESUME_GRACE_SECONDS="0.3")
    stream_id = client.post("/api/streams", json={"message": "nobody"}).json["stream_id"]
    time.sleep(1.0)
    status = client.get(f"/api/streams/{stream_id}").json
    assert status["status"] == "cancelled" and status["events"] < 53


def test_the_resume_names_another_stream_than_the_url_is_400() -> None:
    client = app_client()
    response = client.get("/api/streams/s_0123456789abcdef/events", headers={"Last-Event-ID": "s_fedcba9876543210:1"})
    assert response.status_code == 400


def test_heartbeat_events_for_browsers_carry_no_id() -> None:
    client = app_client(WEBAPP_HEARTBEAT_SECONDS="0.1", WEBAPP_SCRIPTED_TTFT_MS="500")
    plain = client.get("/api/chat/events?message=x").data
    assert b": ping\n\n" in plain and b"event: heartbeat" not in plain
    page = client.get("/api/chat/events?message=x&heartbeat_events=1").data
    assert b"event: heartbeat\ndata: {}\n\n" in page and b": ping" not in page


def test_the_playground_page_has_no_external_assets() -> None:
    page = app_client().get("/").get_data(as_text=True)
    assert "<title>Streaming playground</title>" in page and "Last-Event-ID" in page
    assert "http://" not in page and "https://" not in page and "<link" not in page


def test_only_resumable_streams_are_kept_in_the_store() -> None:
    client = app_client()
    store = client.application.extensions["uncut"].streams.store
    assert client.post("/api/chat/stream", json={"message": "hello"}).status_code == 200
    assert (
        client.post(
            "/v1/chat/completions", json={"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        ).status_code
        == 200
    )
    assert len(store._logs) == 0  # text and /v1 never show their id: nothing to resume, nothing kept
    sse = events(client.post("/api/chat/events", json={"message": "hello"}).data)
    assert list(store._logs) == [sse[0].json()["stream_id"]]
