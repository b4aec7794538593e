"""The service with the scripted model's old, quadratic tool planner: the negative control of issue 22's finding 2."""

from __future__ import annotations

import uncut.scripted
from tests.support.old_tool_planner import reference_plan

uncut.scripted.plan_tool_calls = reference_plan  # type: ignore[assignment]

from wsgi import app  # noqa: E402

__all__ = ["app"]
