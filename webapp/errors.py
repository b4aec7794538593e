"""JSON errors for every failure a client can cause, and none of our internals.

Every error body is ``{"error": {"type": ..., "message": ...}}`` with the
right status; werkzeug's HTML error pages and stack traces never reach a
client. On the OpenAI surface (``/v1``) an HTTP error or an unexpected
failure has OpenAI's shape, ``{"error": {"message", "type", "param",
"code"}}``, which its SDKs parse: our type is the ``code``.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

# werkzeug exception name -> our error type, for the statuses clients cause.
_TYPES = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
}


class ApiError(Exception):
    """A request the service refuses, with the status and type to answer with."""

    def __init__(self, status: int, type: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.message = message
        self.headers = headers or {}


def error_response(status: int, type: str, message: str, headers: dict[str, str] | None = None) -> Response:
    response = jsonify({"error": {"type": type, "message": message}})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def on_openai_surface() -> bool:
    """The request is for ``/v1``, routed or not (a 404 there has no blueprint)."""
    path = request.path
    return path == "/v1" or path.startswith("/v1/")


def openai_error_response(status: int, type: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """OpenAI's error body: ``invalid_request_error`` for the client's mistakes, ``server_error`` for ours."""
    kind = "server_error" if status >= 500 else "invalid_request_error"
    response = jsonify({"error": {"message": message, "type": kind, "param": None, "code": type}})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    message = exc.description or exc.name
    if status == 405 and getattr(exc, "valid_methods", None):
        headers = {"Allow": ", ".join(sorted(exc.valid_methods))}  # type: ignore[attr-defined]
    else:
        headers = {}
    if status == 400 and "JSON" in (exc.description or ""):
        message = "The request body is not valid JSON."
    answer = openai_error_response if on_openai_surface() else error_response
    return answer(status, _TYPES.get(status, "http_error"), message, headers)


def _api_error(exc: ApiError) -> Response:
    return error_response(exc.status, exc.type, exc.message, exc.headers)


def _unexpected(exc: Exception) -> Any:
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    log.exception("unhandled error")
    answer = openai_error_response if on_openai_surface() else error_response
    return answer(500, "internal_error", "The server failed to handle the request.")


def _not_found(exc: Exception) -> Response:
    message = str(exc)
    if "use a shared store" in message:  # the library's hint (a memory store), in this service's terms
        message += " In this service: WEBAPP_STREAM_STORE=redis://..."
    return error_response(404, "stream_not_found", message)


def _store_unavailable(exc: Exception) -> Response:
    log.warning("stream store unavailable: %s", exc)
    return error_response(503, "store_unavailable", "The stream store is unavailable; retry shortly.", {"Retry-After": "3"})


def register_error_handlers(app: Flask) -> None:
    from uncut.eventlog import StoreUnavailable
    from uncut.flask import StreamNotFound, StreamRefused, refusal_response

    app.register_error_handler(StreamRefused, refusal_response)
    app.register_error_handler(StreamNotFound, _not_found)
    app.register_error_handler(StoreUnavailable, _store_unavailable)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
