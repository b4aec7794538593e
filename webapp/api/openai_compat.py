"""The OpenAI-compatible surface: ``POST /v1/chat/completions`` and ``GET /v1/models``.

Existing OpenAI clients (the official SDK, ChatOpenAI, anything speaking the
protocol) use the service unchanged, and it can sit in front of any
OpenAI-compatible backend. The request's ``model`` is echoed back; the
service's configured model answers. Errors use OpenAI's body shape.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from flask import Blueprint, Response, jsonify
from flask.typing import ResponseReturnValue
from langchain_core.runnables import Runnable

from uncut.flask import openai_response
from uncut.generation import error_body
from uncut.openai_chunks import completion, openai_error, wire_tool_calls
from webapp.api import service
from webapp.api.reading import json_body
from webapp.chat_request import ChatLimits
from webapp.errors import ApiError
from webapp.openai_request import CompletionRequest, InvalidCompletionRequest, parse_completion_request

bp = Blueprint("openai", __name__, url_prefix="/v1")

def _invalid(exc: InvalidCompletionRequest) -> Response:
    response = jsonify({"error": {"message": str(exc), "type": "invalid_request_error", "param": exc.param, "code": None}})
    response.status_code = 400
    return response


def _parse() -> CompletionRequest:
    settings = service().settings
    limits = ChatLimits(max_messages=settings.max_messages, max_message_chars=settings.max_message_chars)
    return parse_completion_request(json_body(), limits, settings.max_tokens)


@bp.get("/models")
def models() -> ResponseReturnValue:
    settings = service().settings
    return jsonify(object="list", data=[{"id": settings.model, "object": "model", "created": 0, "owned_by": settings.provider}])


@bp.post("/chat/completions")
def chat_completions() -> ResponseReturnValue:
    try:
        req = _parse()
    except InvalidCompletionRequest as exc:
        return _invalid(exc)
    model: Runnable[Any, Any] = service().chat_model
    if req.tools:
        model = service().chat_model.bind_tools(req.tools, tool_choice=req.tool_choice, parallel_tool_calls=req.parallel_tool_calls)
    if req.params:
        model = model.bind(**req.params)
    if req.stream:
        return openai_response(model, req.messages, model=req.model, include_usage=req.include_usage)
    try:
        answer = model.invoke(req.messages)
    except Exception as exc:  # noqa: BLE001 - a provider failure is the upstream's, not ours
        body: dict[str, Any] = error_body(exc)["error"]
        status = 429 if body["type"] == "rate_limited" else 502
        return jsonify(openai_error(body)), status
    finish = answer.response_metadata.get("finish_reason") or "stop"
    calls = wire_tool_calls(answer)
    return jsonify(completion("chatcmpl-" + secrets.token_hex(12), req.model, int(time.time()), answer.text, finish, answer.usage_metadata, calls))


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> ResponseReturnValue:
    """Body errors (415, invalid JSON) on this surface, in OpenAI's shape."""
    response = jsonify({"error": {"message": exc.message, "type": "invalid_request_error", "param": None, "code": exc.type}})
    response.status_code = exc.status
    return response
