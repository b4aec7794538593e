"""Strict JSON request bodies, with no Flask.

``json.loads`` alone lets three kinds of hostile input through to a 500 or a
broken stream: nesting deep enough to raise RecursionError, strings with
unpaired surrogates (valid JSON escapes that cannot be encoded back to
UTF-8 when we stream them out), and NaN/Infinity. All become
``InvalidJSON`` here, which the views answer with 400.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64
_SURROGATE = re.compile("[\ud800-\udfff]")


class InvalidJSON(ValueError):
    """The body is not JSON we accept; the message is safe to show."""


def _no_constants(name: str) -> Any:
    raise InvalidJSON(f"The request body contains {name}, which is not valid JSON.")


def _check(value: Any) -> None:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidJSON(f"The JSON is nested more than {MAX_DEPTH} levels deep.")
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise InvalidJSON("The request body contains an unpaired UTF-16 surrogate.")
        elif isinstance(item, dict):
            stack.extend((key, depth) for key in item)
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)


def load_json(raw: bytes) -> Any:
    """Parse a request body, or raise ``InvalidJSON``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidJSON("The request body is not valid UTF-8.") from None
    return loads_strict(text)


def loads_strict(text: str, what: str = "The request body") -> Any:
    """Parse JSON text held to the body's rules (depth, surrogates, no NaN), or raise ``InvalidJSON``.

    For JSON inside a string of the body too, such as a tool call's
    ``arguments``: ``what`` names it in the message.
    """
    try:
        value = json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        raise InvalidJSON(f"The JSON is nested more than {MAX_DEPTH} levels deep.") from None
    except InvalidJSON as exc:
        raise InvalidJSON(str(exc).replace("The request body", what)) from None
    except ValueError:
        raise InvalidJSON(f"{what} is not valid JSON.") from None
    try:
        _check(value)
    except InvalidJSON as exc:
        raise InvalidJSON(str(exc).replace("The request body", what)) from None
    return value
