"""Is a tool's ``parameters`` a JSON Schema? Checked against the meta-schema with ``jsonschema``, bounded first.

A request's tool schemas reach the model: the scripted model reads them,
and a provider may refuse them with an error that looks like ours. A
keyword of the wrong type (``"required": 5``, ``"enum": 5``, ``"minimum":
"x"``, ``"anyOf": [5]``) is the client's mistake, so it is a 400 naming the
parameter and the place inside the schema, found here before anything runs.

The draft is the one ``$schema`` names; without one, any of drafts 4 to
2020-12 that accepts the schema will do, and 2020-12's objection is the
one reported. Unknown keywords are allowed, as the
specification allows them; ``$ref`` is not resolved. Before the check the
schema's size is bounded (``MAX_SCHEMA_NODES`` objects and lists), so the
meta-schema's walk is bounded too; depth is already bounded by the body's
parser (``webapp.jsonbody.MAX_DEPTH``).
"""

from __future__ import annotations

import warnings
from collections import deque
from typing import Any

from jsonschema import exceptions, validators

MAX_SCHEMA_NODES = 10_000


class SchemaError(ValueError):
    """Not a JSON Schema; ``where`` is the path inside it (``properties.city.enum``), empty at the root."""

    def __init__(self, message: str, where: str) -> None:
        super().__init__(message)
        self.where = where


def _path(parts: deque[Any]) -> str:
    where = ""
    for part in parts:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    return where


def _bounded(schema: Any) -> None:
    stack, seen = [schema], 0
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        else:
            continue
        seen += 1
        if seen > MAX_SCHEMA_NODES:
            raise SchemaError(f"has more than {MAX_SCHEMA_NODES} subschemas", "")


# Without ``$schema``, a schema any of these drafts accepts is accepted: clients still send draft-7 forms
# (tuple ``items``, boolean ``exclusiveMinimum`` from draft 4) that providers take. The first is the one whose
# error is reported.
_DRAFTS = (
    validators.Draft202012Validator,
    validators.Draft201909Validator,
    validators.Draft7Validator,
    validators.Draft6Validator,
    validators.Draft4Validator,
)


def _first_error(validator: Any, schema: Any) -> Any:
    return exceptions.best_match(validator(validator.META_SCHEMA).iter_errors(schema))


def check_schema(schema: Any) -> None:
    """Raise ``SchemaError`` naming the most relevant place the meta-schema refuses."""
    _bounded(schema)
    named = isinstance(schema, dict) and "$schema" in schema
    with warnings.catch_warnings():  # an unknown $schema URI warns, then takes the default draft
        warnings.simplefilter("ignore", DeprecationWarning)
        drafts = (validators.validator_for(schema, default=_DRAFTS[0]),) if named else _DRAFTS
    error = _first_error(drafts[0], schema)
    if error is None or any(_first_error(draft, schema) is None for draft in drafts[1:]):
        return
    raise SchemaError(error.message[:300], _path(error.absolute_path))
