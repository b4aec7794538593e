"""References (b) and (c): Flask with a plain ``stream_with_context`` generator over ``llm.stream()``.

No relay, no heartbeats, no disconnect handling: the simplest correct
Flask streaming view. The harness serves it with gunicorn ``-k gevent``
(b) and ``-k gthread`` (c), one worker each.
"""

from __future__ import annotations

from typing import Iterator

from flask import Flask, Response, jsonify, request, stream_with_context
from langchain_core.messages import HumanMessage

from bench.apps import chat_model

app = Flask(__name__)
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
