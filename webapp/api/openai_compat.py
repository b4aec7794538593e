"""The OpenAI-compatible surface: ``POST /v1/chat/completions``, ``POST /v1/responses`` and ``GET /v1/models``.

Existing OpenAI clients (the official SDK, ChatOpenAI, anything speaking the
protocol) use the service unchanged, and it can sit in front of any
OpenAI-compatible backend. The request's ``model`` is echoed back; the
service's configured model answers. Errors use OpenAI's body shape.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify
from flask.typing import ResponseReturnValue
from langchain_core.runnables import Runnable

from uncut.flask import openai_response, responses_response
from webapp.api import service
from webapp.api.reading import json_body
from webapp.chat_request import ChatLimits
from webapp.errors import ApiError
from webapp.openai_request import CompletionRequest, InvalidCompletionRequest, parse_completion_request
from webapp.responses_request import parse_responses_request

bp = Blueprint("openai", __name__, url_prefix="/v1")


def _invalid(exc: InvalidCompletionRequest) -> Response:
    response = jsonify({"error": {"message": str(exc), "type": "invalid_request_error", "param": exc.param, "code": exc.code}})
    response.status_code = 400
    return response


def _limits() -> ChatLimits:
    settings = service().settings
    return ChatLimits(max_messages=settings.max_messages, max_message_chars=settings.max_message_chars)


def _parse() -> CompletionRequest:
    return parse_completion_request(json_body(), _limits(), service().settings.max_tokens)


def _model_for(tools: list[dict[str, Any]], tool_choice: Any, parallel: bool | None, params: dict[str, Any]) -> Runnable[Any, Any]:
    """The configured model, bound to the request's tools and sampling parameters."""
    model: Runnable[Any, Any] = service().chat_model
    if tools:
        model = service().chat_model.bind_tools(tools, tool_choice=tool_choice, parallel_tool_calls=parallel)
    if params:
        model = model.bind(**params)
    return model


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
    model = _model_for(req.tools, req.tool_choice, req.parallel_tool_calls, req.params)
    # Streaming or not, a run: the slot, the key's share, the deadline, the caps, the disconnect watch.
    return openai_response(model, req.messages, model=req.model, include_usage=req.include_usage, stream=req.stream)


@bp.post("/responses")
def responses() -> ResponseReturnValue:
    """OpenAI's Responses API over the configured model: streamed events, or the Response as JSON."""
    try:
        req = parse_responses_request(json_body(), _limits(), service().settings.max_tokens)
    except InvalidCompletionRequest as exc:
        return _invalid(exc)
    model = _model_for(req.tools, req.tool_choice, req.parallel_tool_calls, req.params)
    return responses_response(model, req.messages, echo=req.echo, stream=req.stream)


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> ResponseReturnValue:
    """Body errors (415, invalid JSON) on this surface, in OpenAI's shape."""
    response = jsonify({"error": {"message": exc.message, "type": "invalid_request_error", "param": None, "code": exc.type}})
    response.status_code = exc.status
    return response
