"""Log lines with request ids, as JSON (the default) or plain text.

Each request gets an id: the client's ``X-Request-ID`` when it is a sane
token, else a fresh one; it is returned in the response's ``X-Request-ID``
header and stamped on every log line written while the request runs,
including the per-stream summary, so one grep follows a stream end to end.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from datetime import datetime, timezone
from typing import Any

from flask import Flask, Response, g, has_request_context, request

_VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
HEADER = "X-Request-ID"


def current_request_id() -> str | None:
    if not has_request_context():
        return None
    return getattr(g, "request_id", None) or request.headers.get(HEADER)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``extra={"fields": {...}}`` adds structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "request_id": getattr(record, "request_id", None),
            "message": record.getMessage(),
        }
        line.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The classic line, with the request id and any structured fields as JSON at the end."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s [%(process)d] [%(levelname)s] %(name)s [%(request_id)s]: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.request_id = getattr(record, "request_id", None) or "-"
        text = super().format(record)
        fields = getattr(record, "fields", None)
        return f"{text} {json.dumps(fields, sort_keys=True, default=str)}" if fields else text


LOGGERS = ("webapp", "uncut")  # the service's own, and the library's
summary_log = logging.getLogger("webapp.stream")


def configure_logging(level: str, fmt: str) -> None:
    """Our loggers write to stderr (gunicorn's error log) unless the host app set up logging."""
    if logging.getLogger().handlers:
        for handler in logging.getLogger().handlers:
            handler.addFilter(RequestIdFilter())
        for name in LOGGERS:
            logging.getLogger(name).setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    for name in LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.propagate = False


def summary_fields() -> dict[str, Any]:
    """Taken when a stream's response is built: its summary may be logged after the request has ended."""
    return {"request_id": current_request_id()}


def log_stream_summary(summary: dict[str, Any]) -> None:
    """One ``stream_summary`` line per streamed response, with the request id of the request that opened it."""
    summary_log.info("stream_summary", extra={"fields": summary, "request_id": summary.get("request_id")})


def install_request_ids(app: Flask) -> None:
    @app.before_request
    def assign() -> None:
        given = request.headers.get(HEADER, "")
        g.request_id = given if _VALID_ID.fullmatch(given) else uuid.uuid4().hex

    @app.after_request
    def echo(response: Response) -> Response:
        request_id = getattr(g, "request_id", None)
        if request_id:
            response.headers[HEADER] = request_id
        return response
