"""``GET /healthz`` (liveness plus what a person checking a deploy wants to see) and ``GET /metrics``."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from flask.typing import ResponseReturnValue

from uncut.prometheus import exposition
from webapp.api import service

bp = Blueprint("health", __name__)


@bp.get("/metrics")
def prometheus_metrics() -> ResponseReturnValue:
    body, content_type = exposition()
    return Response(body, content_type=content_type)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    state = service()
    return jsonify(status="ok", provider=state.settings.provider, model=state.settings.model, worker=state.worker)
