"""The chat surfaces: one answer (``/api/chat``), plain text and SSE streams.

Each view reads and validates the whole request first, then hands the model
and the messages to the relay; nothing after that touches ``request``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from webapp.api import service
from webapp.chat_request import ChatLimits, InvalidChatRequest, parse_chat_body
from webapp.errors import ApiError
from uncut.generation import error_body
from webapp.jsonbody import InvalidJSON, load_json
from uncut.flask import resume_response, sse_response, text_response

bp = Blueprint("chat", __name__, url_prefix="/api/chat")

_MESSAGE_CLASSES = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}


def json_body() -> Any:
    """The request's JSON, or a 415/400 ApiError that says what is wrong with it."""
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "Send the body as JSON with Content-Type: application/json.")
    try:
        return load_json(request.get_data(cache=True))
    except InvalidJSON as exc:
        raise ApiError(400, "invalid_json", str(exc)) from None


def chat_messages(body: Any) -> list[BaseMessage]:
    settings = service().settings
    limits = ChatLimits(max_messages=settings.max_messages, max_message_chars=settings.max_message_chars)
    try:
        pairs = parse_chat_body(body, limits)
    except InvalidChatRequest as exc:
        raise ApiError(400, "invalid_request", str(exc)) from None
    return to_messages(pairs)


def to_messages(pairs: list[tuple[str, str]]) -> list[BaseMessage]:
    """Validated (role, content) pairs as LangChain messages."""
    return [_MESSAGE_CLASSES[role](content=content) for role, content in pairs]


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
    from webapp.api.streams import heartbeat_events, last_event_id

    if request.method == "GET":
        resume = last_event_id()
        if resume is not None:  # a reconnect (EventSource sends Last-Event-ID): follow that stream, start nothing
            return resume_response(resume[0], after=resume[1], heartbeat_events=heartbeat_events())
    return sse_response(service().chat_model, _request_messages(), heartbeat_events=heartbeat_events())
