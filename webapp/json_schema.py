"""Is a tool's ``parameters`` a JSON Schema? The keyword types of the meta-schema, checked with no dependency.

A request's tool schemas reach the model: the scripted model reads them,
and a provider may refuse them with an error that looks like ours. A
keyword of the wrong type (``"required": 5``, ``"enum": 5``, ``"minimum":
"x"``, ``"anyOf": [5]``) is the client's mistake, so it is a 400 naming the
parameter, found here before anything runs.

This checks what the JSON Schema meta-schemas (drafts 4 to 2020-12) say
about each known keyword's type; unknown keywords are allowed, as the
specification allows them. It is not a validator of instances, and it does
not resolve ``$ref``. The walk is iterative and bounded in nodes; depth is
already bounded by the body's parser (``webapp.jsonbody.MAX_DEPTH``). The
``jsonschema`` package would do the same check; it is not a dependency.
"""

from __future__ import annotations

from typing import Any

MAX_SCHEMA_NODES = 10_000
TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})

# Keywords whose value is one schema, an object of schemas, or a non-empty list of schemas.
_SCHEMA = ("additionalProperties", "additionalItems", "not", "if", "then", "else", "contains", "propertyNames",
           "unevaluatedProperties", "unevaluatedItems")
_SCHEMA_MAP = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LIST = ("allOf", "anyOf", "oneOf", "prefixItems")
_NON_NEGATIVE = ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties", "minContains", "maxContains")
_NUMBERS = ("minimum", "maximum")
_STRINGS = ("title", "description", "pattern", "format", "$ref", "$schema", "$id", "$anchor", "$comment",
            "$dynamicRef", "$dynamicAnchor", "contentEncoding", "contentMediaType")
_BOOLEANS = ("uniqueItems", "readOnly", "writeOnly", "deprecated")


class SchemaError(ValueError):
    """Not a JSON Schema; ``where`` is the path inside it (``properties.city.enum``), empty at the root."""

    def __init__(self, message: str, where: str) -> None:
        super().__init__(message)
        self.where = where


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_whole(value: Any) -> bool:
    return _is_number(value) and float(value).is_integer() and value >= 0


def check_schema(schema: Any) -> None:
    """Raise ``SchemaError`` at the first keyword of the wrong type; bounded at ``MAX_SCHEMA_NODES`` subschemas."""
    stack: list[tuple[Any, str]] = [(schema, "")]
    seen = 0
    while stack:
        node, where = stack.pop()
        seen += 1
        if seen > MAX_SCHEMA_NODES:
            raise SchemaError(f"has more than {MAX_SCHEMA_NODES} subschemas", "")
        if isinstance(node, bool):
            continue  # true and false are schemas
        if not isinstance(node, dict):
            raise SchemaError("must be a schema (an object or a boolean)", where)
        stack.extend(_children(node, where))


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _fail(where: str, key: str, what: str) -> SchemaError:
    return SchemaError(f"{key} must be {what}", _at(where, key))


def _children(node: dict[str, Any], where: str) -> list[tuple[Any, str]]:
    """Check ``node``'s own keywords; its subschemas, for the walk."""
    children: list[tuple[Any, str]] = []
    kind = node.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not kinds or not all(isinstance(k, str) and k in TYPES for k in kinds) or len(set(kinds)) != len(kinds):
            raise _fail(where, "type", f"one of {', '.join(sorted(TYPES))}, or a list of distinct ones")
    if "enum" in node and not isinstance(node["enum"], list):
        raise _fail(where, "enum", "a list")
    if "examples" in node and not isinstance(node["examples"], list):
        raise _fail(where, "examples", "a list")
    required = node.get("required")
    if required is not None and (
        not isinstance(required, list) or not all(isinstance(n, str) for n in required) or len(set(required)) != len(required)
    ):
        raise _fail(where, "required", "a list of distinct property names")
    for key in _NUMBERS:
        if key in node and not _is_number(node[key]):
            raise _fail(where, key, "a number")
    for key in ("exclusiveMinimum", "exclusiveMaximum"):  # a number, or draft 4's boolean
        if key in node and not (_is_number(node[key]) or isinstance(node[key], bool)):
            raise _fail(where, key, "a number")
    if "multipleOf" in node and not (_is_number(node["multipleOf"]) and node["multipleOf"] > 0):
        raise _fail(where, "multipleOf", "a number above 0")
    for key in _NON_NEGATIVE:
        if key in node and not _is_whole(node[key]):
            raise _fail(where, key, "a whole number of 0 or more")
    for key in _STRINGS:
        if key in node and not isinstance(node[key], str):
            raise _fail(where, key, "a string")
    for key in _BOOLEANS:
        if key in node and not isinstance(node[key], bool):
            raise _fail(where, key, "true or false")
    dependent = node.get("dependentRequired")
    if dependent is not None and not (
        isinstance(dependent, dict) and all(isinstance(v, list) and all(isinstance(n, str) for n in v) for v in dependent.values())
    ):
        raise _fail(where, "dependentRequired", "an object of lists of property names")
    for key in _SCHEMA:
        if key in node:
            children.append((node[key], _at(where, key)))
    for key in _SCHEMA_MAP:
        if key in node:
            value = node[key]
            if not isinstance(value, dict):
                raise _fail(where, key, "an object of schemas")
            children.extend((child, _at(where, f"{key}.{name}")) for name, child in value.items())
    for key in _SCHEMA_LIST:
        if key in node:
            value = node[key]
            if not isinstance(value, list) or not value:
                raise _fail(where, key, "a non-empty list of schemas")
            children.extend((child, _at(where, f"{key}[{i}]")) for i, child in enumerate(value))
    if "items" in node:  # one schema, or (before 2020-12) a list of them
        items = node["items"]
        if isinstance(items, list):
            children.extend((child, _at(where, f"items[{i}]")) for i, child in enumerate(items))
        else:
            children.append((items, _at(where, "items")))
    if "dependencies" in node:  # draft 4-7: schemas or lists of names
        value = node["dependencies"]
        if not isinstance(value, dict):
            raise _fail(where, "dependencies", "an object")
        for name, child in value.items():
            if isinstance(child, list):
                if not all(isinstance(n, str) for n in child):
                    raise _fail(where, f"dependencies.{name}", "a schema or a list of property names")
            else:
                children.append((child, _at(where, f"dependencies.{name}")))
    return children
