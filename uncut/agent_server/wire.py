"""Internal: the Agent Server API's JSON: its error shape, and graph values made JSON the way LangGraph's clients read them.

Errors are ``{"detail": "..."}`` with the status the SDKs map to their
exceptions (``langgraph_sdk.errors``: 404 ``NotFoundError``, 409
``ConflictError``, 422 ``UnprocessableEntityError``). Messages are their
``model_dump()`` (``{"type": "ai", "content": ..., "id": ...}``), which is
what ``useStream`` and the Python SDK parse.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import uuid
from collections.abc import Mapping
from typing import Any

from uncut.errors import ProtocolError
from uncut.events import clean_text

# uuid5 namespace of assistant ids: one assistant per graph, its id the same on every worker and after every restart.
ASSISTANT_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
MAX_DEPTH = 64


def not_found(what: str) -> ProtocolError:
    return ProtocolError(404, f"{what} not found")


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def to_json(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON types: messages, interrupts, commands, pydantic models and dataclasses included.

    Anything else becomes its ``str``; text is made encodable; NaN and
    infinities become null (JSON has neither); nesting past ``MAX_DEPTH`` is cut.
    """
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return clean_text(value)
    if depth > MAX_DEPTH:
        return None
    if isinstance(value, Mapping):
        return {str(k): to_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json(v, depth + 1) for v in value]
    if isinstance(value, (uuid.UUID, dt.date, dt.datetime)):
        return value.isoformat() if not isinstance(value, uuid.UUID) else str(value)
    if type(value).__name__ == "Interrupt" and hasattr(value, "value"):
        return {"value": to_json(value.value, depth + 1), "id": getattr(value, "id", None)}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return to_json(dump(), depth + 1)
        except Exception:  # noqa: BLE001 - a model that cannot dump itself is shown as text
            return clean_text(str(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_json({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, depth + 1)
    if hasattr(value, "_asdict"):
        return to_json(value._asdict(), depth + 1)
    return clean_text(str(value))
