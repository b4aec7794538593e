"""The demo agent over SSE: ``POST /api/agent/events``.

The body is a chat request (``{"message"}`` or ``{"messages"}``); the answer
streams as the rich events: tool calls with their argument fragments, tool
results, steps, text, then ``end``. Reconnect with ``Last-Event-ID`` (to
``GET`` this URL or to ``/api/streams/<id>/events``) to resume.
"""

from __future__ import annotations

from flask import Blueprint, request
from flask.typing import ResponseReturnValue

from uncut.flask import resume_response, sse_response
from webapp.api import service
from webapp.api.reading import chat_messages, heartbeat_events, json_body, last_event_id
from webapp.errors import ApiError

bp = Blueprint("agent", __name__, url_prefix="/api/agent")


@bp.route("/events", methods=["GET", "POST"])
def agent_events() -> ResponseReturnValue:
    if request.method == "GET":
        resume = last_event_id()
        if resume is None:
            raise ApiError(400, "invalid_request", "GET resumes a stream: send Last-Event-ID. Start one with POST.")
        return resume_response(resume[0], after=resume[1], heartbeat_events=heartbeat_events())
    messages = chat_messages(json_body())
    return sse_response(service().agent, {"messages": messages}, heartbeat_events=heartbeat_events(), metadata={"agent": "demo"})
