"""The three adapters answer alike: the same bodies for a whole answer, a refusal and a resumable run,
whether the view is Flask's, Django's or a bare WSGI callable (Django runs in a child process: its
settings are process-wide)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from flask import Flask
from langchain_core.messages import HumanMessage

import uncut.flask
import uncut.wsgi
from uncut import ScriptedChatModel, StreamOptions, Streams

ROOT = Path(__file__).resolve().parents[2]
ENVIRON = {"REMOTE_ADDR": "10.0.0.1", "REQUEST_METHOD": "POST", "PATH_INFO": "/"}


def model() -> ScriptedChatModel:
    return ScriptedChatModel(tokens=3, ttft=0, interval=0)


class Started:
    status = ""
    headers: list[tuple[str, str]] = []

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        self.status, self.headers = status, headers


def wsgi_call(function: Any, *args: Any, **kwargs: Any) -> tuple[str, dict[str, str], bytes]:
    started = Started()
    body = function(dict(ENVIRON), started, *args, **kwargs)
    try:
        data = b"".join(body)
    finally:
        getattr(body, "close", lambda: None)()
    return started.status, dict(started.headers), data


def flask_call(view: Any) -> tuple[int, dict[str, str], bytes]:
    app = Flask(__name__)
    uncut.flask.Streaming(app, max_concurrent_streams=1)
    app.add_url_rule("/", "view", view, methods=["POST"])
    response = app.test_client().post("/")
    return response.status_code, dict(response.headers), response.get_data()


def test_a_whole_answer_is_the_same_json_in_flask_and_wsgi() -> None:
    _, _, flask_body = flask_call(lambda: uncut.flask.answer_response(model(), [HumanMessage("hi")]))
    status, headers, wsgi_body = wsgi_call(uncut.wsgi.answer_response, model(), [HumanMessage("hi")], streams=Streams())
    assert status == "200 OK" and headers["Content-Type"] == "application/json"
    assert json.loads(flask_body) == json.loads(wsgi_body)
    assert json.loads(wsgi_body)["finish_reason"] == "stop"


def test_a_whole_completion_and_response_in_wsgi() -> None:
    status, _, body = wsgi_call(uncut.wsgi.openai_response, model(), [HumanMessage("hi")], model="m", stream=False, streams=Streams())
    assert status == "200 OK" and json.loads(body)["object"] == "chat.completion"
    status, _, body = wsgi_call(
        uncut.wsgi.responses_response, model(), [HumanMessage("hi")], echo={"model": "m"}, stream=False, streams=Streams()
    )
    assert status == "200 OK" and json.loads(body)["status"] == "completed"
    status, headers, body = wsgi_call(uncut.wsgi.openai_response, model(), [HumanMessage("hi")], model="m", streams=Streams())
    assert status == "200 OK" and body.rstrip().endswith(b"data: [DONE]")


def test_a_refusal_is_the_same_in_flask_and_wsgi() -> None:
    full = Streams(StreamOptions(max_concurrent_streams=1, admission_start_budget_ms=0))
    held = full.start(ScriptedChatModel(tokens=50, ttft=0, interval=0.05), [HumanMessage("hi")])
    try:
        status, headers, body = wsgi_call(uncut.wsgi.sse_response, model(), [HumanMessage("hi")], streams=full)
        assert status.startswith("503") and "Retry-After" in headers
        assert json.loads(body)["error"]["type"] == "overloaded"
    finally:
        full.cancel(held)


def test_a_resumable_run_in_wsgi() -> None:
    streams = Streams()
    stream_id = uncut.wsgi.start_stream(dict(ENVIRON), model(), [HumanMessage("hi")], streams=streams, owner="me")
    status, headers, body = wsgi_call(uncut.wsgi.resume_response, stream_id, streams=streams, owner="me")
    assert status == "200 OK" and b"event: end" in body
    assert uncut.wsgi.stream_status(stream_id, streams=streams, owner="me")["status"] == "completed"


DJANGO = """
import json
from django.conf import settings
settings.configure(ALLOWED_HOSTS=["*"], SECRET_KEY="test", ROOT_URLCONF=[], UNCUT={})
import django
django.setup()
from django.test import RequestFactory
from langchain_core.messages import HumanMessage
import uncut.django
from uncut import ScriptedChatModel

request = RequestFactory().post("/")
model = ScriptedChatModel(tokens=3, ttft=0, interval=0)
answer = uncut.django.answer_response(request, model, [HumanMessage("hi")])
whole = uncut.django.openai_response(request, model, [HumanMessage("hi")], model="m", stream=False)
stream_id = uncut.django.start_stream(request, model, [HumanMessage("hi")], owner="me")
resumed = uncut.django.resume_response(request, stream_id, owner="me")
body = b"".join(resumed.streaming_content)
print(json.dumps({
    "answer": json.loads(answer.content), "completion": json.loads(whole.content)["object"], "resumed": resumed.status_code,
    "ended": b"event: end" in body, "status": uncut.django.stream_status(stream_id, owner="me")["status"],
}))
"""


def test_django_answers_the_same() -> None:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(DJANGO)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    _, _, flask_body = flask_call(lambda: uncut.flask.answer_response(model(), [HumanMessage("hi")]))
    assert seen["answer"] == json.loads(flask_body)
    assert seen["completion"] == "chat.completion"
    assert (seen["resumed"], seen["ended"], seen["status"]) == (200, True, "completed")
