"""Issue 22, findings 1, 12 and 13: every surface is a run, readers are capped, caps answer a clear error.

Non-streaming ``/v1/chat/completions`` and ``POST /api/chat`` used to call
``invoke()`` outside the run machinery: no admission slot, no per-key share,
no deadline, no size cap. Resume readers took no slot at all. And a
non-streaming answer cut by ``WEBAPP_MAX_STREAM_EVENTS`` was a ``500``.
Each test here failed on that code; each has its negative control.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from tests.conftest import FAST_SCRIPTED, NO_LINE
from uncut.sse import ServerSentEvent, parse_stream
from webapp import create_app

KEY = "k-0123456789abcdef"
OTHER = "k-fedcba9876543210"
MESSAGES = [{"role": "user", "content": "tell me about streaming"}]
# The three non-streaming surfaces: (path, body).
ANSWERS = {
    "chat.completions": ("/v1/chat/completions", {"model": "m", "messages": MESSAGES}),
    "responses": ("/v1/responses", {"model": "m", "input": "tell me about streaming"}),
    "api.chat": ("/api/chat", {"messages": MESSAGES}),
}


def keyed_app(**config: str) -> Flask:
    return create_app({**FAST_SCRIPTED, "WEBAPP_API_KEYS": f"{KEY},{OTHER}", **config}, environ={})


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def error_of(response: TestResponse) -> dict[str, Any]:
    assert response.is_json, response.data[:200]
    return response.json["error"]


# -- finding 1: the per-key share -------------------------------------------------------


def twenty_at_once(app: Flask, surface: str) -> list[TestResponse]:
    path, body = ANSWERS[surface]

    def ask(_: int) -> TestResponse:
        return app.test_client().post(path, json=body, headers=auth())

    with ThreadPoolExecutor(max_workers=20) as pool:
        return list(pool.map(ask, range(20)))


@pytest.mark.parametrize("surface", ["chat.completions", "api.chat"])
def test_non_streaming_answers_take_the_keys_share(surface: str) -> None:
    # About 2.5 s per answer (50 words, 50 ms apart): the twenty overlap.
    app = keyed_app(WEBAPP_MAX_STREAMS_PER_KEY="1", WEBAPP_SCRIPTED_INTERVAL_MS="50")
    responses = twenty_at_once(app, surface)
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(429) >= 18 and set(statuses) <= {200, 429}, statuses
    refused = next(r for r in responses if r.status_code == 429)
    assert error_of(refused)["type"] == "too_many_streams" and int(refused.headers["Retry-After"]) >= 1
    assert int(refused.headers["retry-after-ms"]) >= 500  # about half a run: when one of the key's answers should be done
    if surface == "chat.completions":
        assert error_of(refused)["code"] == "too_many_streams" and "param" in error_of(refused)  # OpenAI's shape
    assert app.extensions["uncut"].streams.limiter.active == 0, "every slot is back once the answers are done"
    # Another key has its own share.
    path, body = ANSWERS[surface]
    assert app.test_client().post(path, json=body, headers=auth(OTHER)).status_code == 200


def test_negative_control_without_a_per_key_share_all_twenty_are_served() -> None:
    app = keyed_app(WEBAPP_MAX_STREAMS_PER_KEY="0", WEBAPP_SCRIPTED_INTERVAL_MS="20")
    assert [r.status_code for r in twenty_at_once(app, "chat.completions")] == [200] * 20


def test_a_full_worker_refuses_a_non_streaming_answer_with_503() -> None:
    app = create_app({**FAST_SCRIPTED, "WEBAPP_MAX_CONCURRENT_STREAMS": "1", "WEBAPP_SCRIPTED_INTERVAL_MS": "50", **NO_LINE}, environ={})
    client = app.test_client()
    first = client.post("/api/chat/events", json={"message": "one"}, buffered=False)
    next(iter(first.response))  # the one slot is taken
    try:
        for surface in ANSWERS:
            path, body = ANSWERS[surface]
            busy = client.post(path, json=body)
            assert busy.status_code == 503 and error_of(busy)["type"] == "overloaded", surface
            assert busy.headers["Retry-After"] == "3"
    finally:
        first.close()


# -- finding 1: the deadline ------------------------------------------------------------


@pytest.mark.parametrize("surface", ["chat.completions", "api.chat", "responses"])
def test_a_non_streaming_answer_ends_at_the_deadline_with_a_timeout_error(surface: str) -> None:
    app = create_app({**FAST_SCRIPTED, "WEBAPP_MAX_STREAM_SECONDS": "1", "WEBAPP_SCRIPTED_INTERVAL_MS": "100"}, environ={})
    path, body = ANSWERS[surface]
    started = time.monotonic()
    response = app.test_client().post(path, json=body)
    took = time.monotonic() - started
    assert took < 2.5, f"the answer took {took:.1f}s past a 1 s deadline"
    assert response.status_code == 504 and error_of(response)["type"] == "timeout"
    assert "maximum duration" in error_of(response)["message"]
    if surface != "api.chat":
        assert error_of(response)["code"] == "timeout" and response.headers["x-should-retry"] == "false"


def test_negative_control_with_a_long_deadline_the_same_answer_runs_past_a_second() -> None:
    app = create_app({**FAST_SCRIPTED, "WEBAPP_MAX_STREAM_SECONDS": "60", "WEBAPP_SCRIPTED_INTERVAL_MS": "100"}, environ={})
    started = time.monotonic()
    response = app.test_client().post(*ANSWERS["chat.completions"][:1], json=ANSWERS["chat.completions"][1])
    assert response.status_code == 200 and time.monotonic() - started > 2.0


# -- finding 13: the size caps ----------------------------------------------------------


@pytest.mark.parametrize("surface", list(ANSWERS))
def test_a_non_streaming_answer_past_the_event_cap_is_a_422_too_large(surface: str) -> None:
    app = create_app({**FAST_SCRIPTED, "WEBAPP_MAX_STREAM_EVENTS": "10"}, environ={})
    path, body = ANSWERS[surface]
    response = app.test_client().post(path, json=body)
    assert response.status_code == 422, (response.status_code, response.data[:200])
    error = error_of(response)
    assert error["type"] == "too_large" and "maximum size" in error["message"]
    if surface != "api.chat":
        assert error["code"] == "too_large" and error["param"] is None and response.headers["x-should-retry"] == "false"


def test_a_non_streaming_answer_past_the_byte_cap_is_a_422_too_large() -> None:
    app = create_app({**FAST_SCRIPTED, "WEBAPP_MAX_STREAM_BYTES": "1024"}, environ={})
    body = {"model": "m", "messages": MESSAGES, "max_tokens": 2000}
    response = app.test_client().post("/v1/chat/completions", json=body)
    assert response.status_code == 422 and error_of(response)["type"] == "too_large"


def test_negative_control_within_the_caps_the_same_answers_are_200() -> None:
    app = create_app(FAST_SCRIPTED, environ={})
    for surface, (path, body) in ANSWERS.items():
        response = app.test_client().post(path, json=body)
        assert response.status_code == 200, surface


# -- finding 12: readers per key --------------------------------------------------------


def events(body: bytes) -> list[ServerSentEvent]:
    return [e for e in parse_stream([body]) if isinstance(e, ServerSentEvent)]


def open_stream(app: Flask, key: str) -> tuple[TestResponse, str]:
    """A long SSE run of ``key``'s, its first event read: (the response, the first event's id)."""
    response = app.test_client().post("/api/chat/events", json={"message": "x"}, headers=auth(key), buffered=False)
    first = events(next(iter(response.response)))
    return response, first[-1].id


def close_all(*responses: TestResponse) -> None:
    """Last opened first: each streaming response of Flask's test client holds a request context on this thread."""
    for response in reversed(responses):
        response.close()


def readers(app: Flask, key: str, event_id: str, count: int) -> list[TestResponse]:
    """``count`` resume readers on one stream, left open."""
    return [
        app.test_client().get("/api/chat/events", headers={**auth(key), "Last-Event-ID": event_id}, buffered=False) for _ in range(count)
    ]


def test_resume_readers_beyond_the_keys_cap_get_429_too_many_readers() -> None:
    app = keyed_app(WEBAPP_MAX_STREAMS_PER_KEY="2", WEBAPP_MAX_READERS_PER_KEY="3", WEBAPP_SCRIPTED_INTERVAL_MS="200")
    mine, my_id = open_stream(app, KEY)
    theirs, their_id = open_stream(app, OTHER)
    opened = readers(app, KEY, my_id, 8)
    try:
        statuses = [r.status_code for r in opened]
        assert statuses == [200] * 3 + [429] * 5, statuses
        refused = opened[-1]
        assert error_of(refused)["type"] == "too_many_readers" and int(refused.headers["Retry-After"]) >= 1
        assert "readers" in error_of(refused)["message"]
        # A reader that leaves gives its place back (the test client needs its contexts closed last first).
        opened.pop(2).close()
        again = readers(app, KEY, my_id, 2)
        opened += again
        assert [r.status_code for r in again] == [200, 429]
        # Another key is unaffected: its own readers are served.
        others = readers(app, OTHER, their_id, 3)
        opened += others
        assert [r.status_code for r in others] == [200] * 3
    finally:
        close_all(mine, theirs, *opened)
    assert app.extensions["uncut"].streams.readers.active == 0, "every reader slot is back"


def test_the_default_reader_cap_is_twice_the_stream_share() -> None:
    app = keyed_app(WEBAPP_MAX_STREAMS_PER_KEY="2", WEBAPP_SCRIPTED_INTERVAL_MS="200")
    mine, my_id = open_stream(app, KEY)
    opened = readers(app, KEY, my_id, 5)
    try:
        assert [r.status_code for r in opened] == [200] * 4 + [429]
    finally:
        close_all(mine, *opened)


def test_a_reader_never_iterated_gives_its_place_back() -> None:
    app = keyed_app(WEBAPP_MAX_READERS_PER_KEY="1", WEBAPP_SCRIPTED_INTERVAL_MS="200")
    mine, my_id = open_stream(app, KEY)
    try:
        for _ in range(3):
            reader = readers(app, KEY, my_id, 1)[0]
            assert reader.status_code == 200
            reader.close()  # the server gave up before the first byte
    finally:
        mine.close()


def test_readers_of_the_ai_sdk_resume_are_capped_too() -> None:
    app = keyed_app(WEBAPP_MAX_READERS_PER_KEY="2", WEBAPP_SCRIPTED_INTERVAL_MS="200")
    body = {"id": "chat-1", "messages": [{"id": "m1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}]}
    first = app.test_client().post("/api/ui/chat", json=body, headers=auth(), buffered=False)
    next(iter(first.response))
    opened = [app.test_client().get("/api/ui/chat/chat-1/stream", headers=auth(), buffered=False) for _ in range(4)]
    try:
        assert [r.status_code for r in opened] == [200, 200, 429, 429]
        assert error_of(opened[-1])["type"] == "too_many_readers"
    finally:
        close_all(first, *opened)


def test_negative_control_with_the_reader_cap_off_one_key_opens_every_reader() -> None:
    app = keyed_app(WEBAPP_MAX_STREAMS_PER_KEY="1", WEBAPP_MAX_READERS_PER_KEY="0", WEBAPP_SCRIPTED_INTERVAL_MS="200")
    mine, my_id = open_stream(app, KEY)
    opened = readers(app, KEY, my_id, 30)
    try:
        assert [r.status_code for r in opened] == [200] * 30
    finally:
        close_all(mine, *opened)
