"""A bare WSGI app (no framework) that streams a chat model, for Bottle, Pyramid or Falcon users to read.

    gunicorn -c conf/gunicorn.conf.py examples.wsgi_app:app
    curl -N localhost:8000/stream -H 'Content-Type: application/json' -d '{"message": "hi"}'

``POST /ui/chat`` is the Vercel AI SDK's useChat endpoint, and
``GET /ui/chat/<chat id>/stream`` its resume.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable

from langchain_core.messages import HumanMessage

from examples.models import build_model
from uncut.ui_request import InvalidUIRequest, parse_ui_chat, valid_chat_id
from uncut.wsgi import resume_ui_message_response, sse_response, ui_message_response

MAX_BODY_BYTES = 64 * 1024
model = build_model()


def _reply(start_response: Callable[..., Any], status: str, payload: dict[str, Any]) -> list[bytes]:
    body = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _json_body(environ: dict[str, Any]) -> Any:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return json.loads(environ["wsgi.input"].read(min(length, MAX_BODY_BYTES)))


def _invalid(start_response: Callable[..., Any], message: str) -> list[bytes]:
    return _reply(start_response, "400 Bad Request", {"error": {"type": "invalid_request", "message": message}})


def ui_chat(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    try:
        chat = parse_ui_chat(_json_body(environ), max_messages=50, max_message_chars=20_000)
    except (ValueError, InvalidUIRequest) as exc:
        return _invalid(start_response, str(exc))
    return ui_message_response(environ, start_response, model, chat.messages, chat_id=chat.chat_id)


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
    if path == "/healthz":
        return _reply(start_response, "200 OK", {"status": "ok"})
    if path == "/ui/chat" and method == "POST":
        return ui_chat(environ, start_response)
    if path.startswith("/ui/chat/") and path.endswith("/stream") and method == "GET":
        chat_id = path[len("/ui/chat/") : -len("/stream")]
        try:
            valid_chat_id(chat_id)
        except InvalidUIRequest as exc:
            return _invalid(start_response, str(exc))
        return resume_ui_message_response(environ, start_response, chat_id)
    if path != "/stream" or method != "POST":
        return _reply(start_response, "404 Not Found", {"error": {"type": "not_found", "message": "POST /stream"}})
    try:
        message = _json_body(environ).get("message")
    except (ValueError, AttributeError):
        message = None
    if not isinstance(message, str) or not message.strip():
        return _invalid(start_response, 'send {"message": "..."}')
    return sse_response(environ, start_response, model, [HumanMessage(message)])
