"""``GET /api/diagnostics/stream``: a free, scripted stream to test a deployment with.

It builds a scripted model from the query and streams it through exactly
the same path as chat, so "does a 70 s pause survive my load balancer?" is
one ``curl -N`` away. Every parameter is bounded, and so is the whole: at
most 1,000 tokens and 10 minutes, what a deployment check needs (a
10,000-token burst cost 1.5 s of CPU and 10,001 stored events). It is a
run like any other (admission, per-client share); ``WEBAPP_DIAGNOSTICS=false``
removes the route.
"""

from __future__ import annotations

from flask import Blueprint, request
from flask.typing import ResponseReturnValue
from langchain_core.messages import HumanMessage

from uncut.flask import sse_response
from uncut.scripted import ScriptedChatModel
from webapp.errors import ApiError

bp = Blueprint("diagnostics", __name__, url_prefix="/api/diagnostics")

# name -> (default, lowest, highest): integers only, so the bounds are exact.
PARAMETERS: dict[str, tuple[int | None, int, int]] = {
    "tokens": (20, 1, 1_000),
    "interval_ms": (100, 0, 60_000),
    "ttft_ms": (0, 0, 600_000),
    "pause_s": (0, 0, 600),
    "pause_at": (None, 0, 1_000),
    "fail_at": (None, 0, 1_000),
}
MAX_TOTAL_SECONDS = 600


def _parameters() -> dict[str, int | None]:
    unknown = sorted(set(request.args) - set(PARAMETERS))
    if unknown:
        raise ApiError(400, "invalid_request", f"unknown parameter {unknown[0]!r}; accepted: {', '.join(PARAMETERS)}")
    values: dict[str, int | None] = {}
    for name, (default, low, high) in PARAMETERS.items():
        raw = request.args.get(name)
        if raw is None:
            values[name] = default
            continue
        try:
            value = int(raw)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise ApiError(400, "invalid_request", f"{name} must be a whole number from {low} to {high}")
        values[name] = value
    total = (values["ttft_ms"] or 0) / 1000 + (values["tokens"] or 0) * (values["interval_ms"] or 0) / 1000 + (values["pause_s"] or 0)
    if total > MAX_TOTAL_SECONDS:
        raise ApiError(400, "invalid_request", f"the stream would last {total:g} s; at most {MAX_TOTAL_SECONDS} s")
    return values


@bp.get("/stream")
def diagnostics_stream() -> ResponseReturnValue:
    p = _parameters()
    if p["pause_s"] and p["pause_at"] is None:
        p["pause_at"] = (p["tokens"] or 0) // 2
    model = ScriptedChatModel(
        model_name="diagnostics",
        tokens=p["tokens"],
        ttft=(p["ttft_ms"] or 0) / 1000,
        interval=(p["interval_ms"] or 0) / 1000,
        pause=float(p["pause_s"] or 0),
        pause_at=p["pause_at"],
        fail_at=p["fail_at"],
    )
    return sse_response(model, [HumanMessage(content="diagnostics stream")], metadata={"model": "diagnostics"})
