"""Resumable streams: start without a reader, follow, resume, inspect and cancel.

``Last-Event-ID`` (the header a browser's EventSource sends when it
reconnects, or ``?last_event_id=`` where headers cannot be set) names the
stream and the last event the client has: ``<stream_id>:<seq>``. The client
gets every later event and then the live tail; no new producer starts.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, url_for
from flask.typing import ResponseReturnValue

from uncut.flask import StreamNotFound, cancel_stream, resume_response, start_stream, stream_status
from webapp.api import service
from webapp.api.reading import STREAM_ID, chat_messages, heartbeat_events, json_body, last_event_id
from webapp.errors import ApiError

bp = Blueprint("streams", __name__, url_prefix="/api/streams")


def _known(stream_id: str) -> str:
    if not STREAM_ID.fullmatch(stream_id):
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
