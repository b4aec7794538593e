"""``GET /healthz``: liveness plus what a person checking a deploy wants to see."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from webapp.api import service

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    state = service()
    return jsonify(status="ok", provider=state.settings.provider, model=state.settings.model, worker=state.worker)
