"""The chat surfaces: one answer (``/api/chat``), plain text and SSE streams.

Each view reads and validates the whole request first, then hands the model
and the messages to the relay; nothing after that touches ``request``.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue
from langchain_core.messages import BaseMessage

from uncut.flask import resume_response, sse_response, text_response
from uncut.generation import error_body
from webapp.api import service
from webapp.api.reading import chat_messages, heartbeat_events, json_body, last_event_id
from webapp.errors import ApiError

bp = Blueprint("chat", __name__, url_prefix="/api/chat")

def _request_messages() -> list[BaseMessage]:
    if request.method == "GET":
        if "message" not in request.args:
            raise ApiError(400, "invalid_request", 'the "message" query parameter is required')
        return chat_messages({"message": request.args["message"]})
    return chat_messages(json_body())


@bp.post("")
def chat() -> ResponseReturnValue:
    messages = chat_messages(json_body())
    state = service()
    try:
        answer = state.chat_model.invoke(messages)
    except Exception as exc:  # noqa: BLE001 - the provider's failure becomes a 502, not a 500
        body = error_body(exc)
        return jsonify(body), 502
    return jsonify(
        text=answer.text,
        finish_reason=answer.response_metadata.get("finish_reason", "stop"),
        usage=dict(getattr(answer, "usage_metadata", None) or {}),
    )


@bp.post("/stream")
def chat_text_stream() -> ResponseReturnValue:
    return text_response(service().chat_model, chat_messages(json_body()))


@bp.route("/events", methods=["GET", "POST"])
def chat_events() -> ResponseReturnValue:
    if request.method == "GET":
        resume = last_event_id()
        if resume is not None:  # a reconnect (EventSource sends Last-Event-ID): follow that stream, start nothing
            return resume_response(resume[0], after=resume[1], heartbeat_events=heartbeat_events())
    return sse_response(service().chat_model, _request_messages(), heartbeat_events=heartbeat_events())
