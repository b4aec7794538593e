"""The chat surfaces: one answer (``/api/chat``), plain text and SSE streams.

Each view reads and validates the whole request first, then hands the model
and the messages to the relay; nothing after that touches ``request``. The
one answer is a run too, collected rather than streamed: the same slot,
per-key share, deadline, caps and disconnect watch.
"""

from __future__ import annotations

from flask import Blueprint, request
from flask.typing import ResponseReturnValue
from langchain_core.messages import BaseMessage

from uncut.flask import answer_response, resume_response, sse_response, text_response
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
    return answer_response(service().chat_model, chat_messages(json_body()))


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
