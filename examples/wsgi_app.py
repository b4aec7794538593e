"""A bare WSGI app (no framework) that streams a chat model, for Bottle, Pyramid or Falcon users to read.

    gunicorn -c conf/gunicorn.conf.py examples.wsgi_app:app
    curl -N localhost:8000/stream -H 'Content-Type: application/json' -d '{"message": "hi"}'
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable

from langchain_core.messages import HumanMessage

from examples.models import build_model
from uncut.wsgi import sse_response

MAX_BODY_BYTES = 64 * 1024
model = build_model()


def _reply(start_response: Callable[..., Any], status: str, payload: dict[str, Any]) -> list[bytes]:
    body = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
    if path == "/healthz":
        return _reply(start_response, "200 OK", {"status": "ok"})
    if path != "/stream" or method != "POST":
        return _reply(start_response, "404 Not Found", {"error": {"type": "not_found", "message": "POST /stream"}})
    length = int(environ.get("CONTENT_LENGTH") or 0)
    try:
        message = json.loads(environ["wsgi.input"].read(min(length, MAX_BODY_BYTES))).get("message")
    except (ValueError, AttributeError):
        message = None
    if not isinstance(message, str) or not message.strip():
        return _reply(start_response, "400 Bad Request", {"error": {"type": "invalid_request", "message": 'send {"message": "..."}'}})
    return sse_response(environ, start_response, model, [HumanMessage(message)])
