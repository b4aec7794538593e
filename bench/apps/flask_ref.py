"""References (b) and (c): Flask with a plain ``stream_with_context`` generator over ``llm.stream()``.

No relay, no heartbeats, no disconnect handling: the simplest correct
Flask streaming view. The harness serves it with gunicorn ``-k gevent``
(b) and ``-k gthread`` (c), one worker each.

With ``BENCH_CLIENT=service`` the same view streams the service's own model
and the worker tunes its garbage collector as the service's does
(``flask-floor``): what HTTP serving alone costs over the bare ceiling,
the floor under the service's relay.
"""

from __future__ import annotations

import os
from typing import Iterator

from flask import Flask, Response, jsonify, request, stream_with_context
from langchain_core.messages import HumanMessage

from bench.apps import chat_model, service_chat_model

app = Flask(__name__)
if os.environ.get("BENCH_CLIENT") == "service":
    from uncut.gunicorn import tune_gc

    llm = service_chat_model()
    tune_gc()  # imported in the worker after fork, as post_worker_init runs it for the service
else:
    llm = chat_model()


@app.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok", app="flask")


@app.post("/api/chat/stream")
def chat_stream() -> Response:
    message = request.get_json()["message"]

    def tokens() -> Iterator[str]:
        for chunk in llm.stream([HumanMessage(content=message)]):
            if chunk.content:
                yield chunk.content  # type: ignore[misc]

    return Response(stream_with_context(tokens()), mimetype="text/plain")
