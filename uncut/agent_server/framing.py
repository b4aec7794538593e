"""Internal: a run's log as the Agent Server's event stream.

- the run's ``start`` is ``event: metadata`` ``{"run_id", "attempt"}``, first;
- each event is ``event: <name>`` with its JSON, and ``id: <seq>`` so that
  a client that reconnects with ``Last-Event-ID`` misses and repeats nothing;
- the run ends with ``event: end`` (``data: null``), or ``event: error``
  ``{"error", "message"}``: a stream that stops without either was cut,
  and the SDKs reconnect.
"""

from __future__ import annotations

from typing import Any

from uncut.eventlog import Event
from uncut.sse import format_json_event


class AgentFormat:
    """Frames one reader's events (``Relay.frames``)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def frame(self, event: Event) -> bytes:
        seq = None if event.seq is None else str(event.seq)
        kind, data = event.kind, event.data
        if kind == "agent" or kind == "agent_token":
            return format_json_event(data.get("p"), event=data.get("e", "values"), id=seq)
        if kind == "start":
            return format_json_event({"run_id": self.run_id, "attempt": 1}, event="metadata", id=seq)
        if kind == "end":
            return format_json_event(None, event="end", id=seq)
        if kind == "error":
            return format_json_event(error_payload(data), event="error", id=seq)
        return b""  # the core's own kinds (heartbeat notes, moves) are not this protocol's


def error_payload(data: dict[str, Any]) -> dict[str, str]:
    """The log's ``{"error": {"type", "message"}}`` as the SDKs read it: ``{"error": type, "message": ...}``."""
    raw = data.get("error")
    error: dict[str, Any] = raw if isinstance(raw, dict) else {}
    return {"error": str(error.get("type", "error")), "message": str(error.get("message", ""))}
