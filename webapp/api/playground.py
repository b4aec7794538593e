"""``GET /``: a small page to watch a stream, cut it, and see it resume (no build step, no external assets)."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

from webapp.browser import page_nonce

bp = Blueprint("playground", __name__)


@bp.get("/")
def index() -> ResponseReturnValue:
    return render_template("playground.html", nonce=page_nonce())
