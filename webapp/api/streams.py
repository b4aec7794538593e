"""Resumable streams: start without a reader, follow, resume, inspect and cancel.

``Last-Event-ID`` (the header a browser's EventSource sends when it
reconnects, or ``?last_event_id=`` where headers cannot be set) names the
stream and the last event the client has: ``<stream_id>:<seq>``. The client
gets every later event and then the live tail; no new generation starts.
"""

from __future__ import annotations

import re

from flask import Blueprint, jsonify, request, url_for
from flask.typing import ResponseReturnValue

from webapp.api import service
from webapp.api.chat import chat_messages, json_body
from webapp.errors import ApiError
from uncut.flask import StreamNotFound, cancel_stream, resume_response, start_stream, stream_status

bp = Blueprint("streams", __name__, url_prefix="/api/streams")

_STREAM_ID = re.compile(r"s_[0-9a-f]{16}")
_EVENT_ID = re.compile(r"(s_[0-9a-f]{16}):(\d{1,9})")


def last_event_id() -> tuple[str, int] | None:
    """The (stream id, sequence number) the client resumes from, if it names one."""
    raw = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    if not raw:
        return None
    match = _EVENT_ID.fullmatch(raw.strip())
    if match is None:
        raise ApiError(400, "invalid_request", "Last-Event-ID must be <stream_id>:<seq>, as sent in an event's id field.")
    return match.group(1), int(match.group(2))


def heartbeat_events() -> bool:
    """``?heartbeat_events=1``: heartbeats as ``event: heartbeat`` (a browser cannot see comments)."""
    return request.args.get("heartbeat_events", "").lower() in ("1", "true", "yes")


def _known(stream_id: str) -> str:
    if not _STREAM_ID.fullmatch(stream_id):
        raise StreamNotFound(f"Stream {stream_id} is unknown here or has expired.")
    return stream_id


@bp.post("")
def start() -> ResponseReturnValue:
    messages = chat_messages(json_body())
    stream_id = start_stream(service().chat_model, messages)
    events_url = url_for("streams.events", stream_id=stream_id)
    return jsonify(stream_id=stream_id, events_url=events_url), 201, {"Location": events_url}


@bp.get("/<stream_id>")
def status(stream_id: str) -> ResponseReturnValue:
    return jsonify(stream_status(_known(stream_id)))


@bp.delete("/<stream_id>")
def cancel(stream_id: str) -> ResponseReturnValue:
    return jsonify(cancel_stream(_known(stream_id)))


@bp.get("/<stream_id>/events")
def events(stream_id: str) -> ResponseReturnValue:
    resume = last_event_id()
    if resume is not None and resume[0] != stream_id:
        raise ApiError(400, "invalid_request", "Last-Event-ID names another stream than the URL.")
    return resume_response(_known(stream_id), after=resume[1] if resume else -1, heartbeat_events=heartbeat_events())
