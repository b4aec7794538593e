"""Internal: how the scripted model uses tools: which to call, with what arguments, and what to say after.

Deterministic, so tests and demos can predict it: a tool is chosen by the
words of its name that appear in the prompt (every such tool, when parallel
calls are allowed), its arguments are built from its JSON schema and the
prompt, and after the tools answer the model reports what they returned.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from dataclasses import dataclass
from typing import Any

# Name parts too common to say which tool the user meant.
_FILLER = frozenset({"get", "set", "do", "run", "tool", "the", "a", "an", "of", "for", "to", "and"})
# Words left out of a string argument: they ask, they do not say what about.
_ASKING = (
    frozenset({"what", "is", "it", "me", "please", "tell", "up", "in", "on", "about", "also", "can", "you", "i", "my", "with"}) | _FILLER
)
_WORD = re.compile(r"[A-Za-z0-9]+")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_MAX_STRING = 200
# The planner runs on the worker's event loop: it looks at this much of the prompt and this many tools, and
# its work is linear in both (a set of the prompt's words, not every name part against every word: that was
# 15 s of a frozen gevent worker for 128 tools and a 32,000-character prompt).
MAX_PROMPT_CHARS = 32_000
MAX_TOOLS = 128
_STEM = 4  # look/lookup, slow/slowly: words that share their first four letters


@dataclass(frozen=True)
class PlannedCall:
    id: str
    name: str
    arguments: str  # JSON text, streamed in fragments


def _name_parts(name: str) -> set[str]:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    return {part.lower() for part in re.split(r"[_\-\s]+", spaced) if part and part.lower() not in _FILLER}


class _Vocabulary:
    """Words, for asking "does a word name this part?" in constant time.

    A word names a part when they are the same word, or share a stem: both
    at least four letters long with the same first four.
    """

    __slots__ = ("words", "stems")

    def __init__(self, words: "set[str] | frozenset[str]") -> None:
        self.words = words
        self.stems = {word[:_STEM] for word in words if len(word) >= _STEM}

    def names(self, word: str) -> bool:
        """Some word of these names ``word`` (the relation is symmetric)."""
        return word in self.words or (len(word) >= _STEM and word[:_STEM] in self.stems)


def tool_name(tool: dict[str, Any]) -> str:
    function = tool.get("function", tool)
    return str(function.get("name", ""))


def _chosen(tool_choice: Any, names: list[str]) -> str | None:
    """The one tool ``tool_choice`` forces, if it forces one."""
    if isinstance(tool_choice, dict):
        name = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
        return name if name in names else None
    if isinstance(tool_choice, str) and tool_choice in names:
        return tool_choice
    return None


def plan_tool_calls(prompt: str, tools: list[dict[str, Any]], tool_choice: Any, parallel: bool | None, salt: int) -> list[PlannedCall]:
    """The calls to make for ``prompt``: the forced tool, or the best matches (all of them when parallel)."""
    prompt = prompt[:MAX_PROMPT_CHARS]
    tools = tools[:MAX_TOOLS]
    names = [tool_name(t) for t in tools]
    said = _Vocabulary({w.lower() for w in _WORD.findall(prompt)})
    forced = _chosen(tool_choice, names)
    if forced is not None:
        picked = [names.index(forced)]
    else:
        scores = [sum(said.names(part) for part in _name_parts(name)) for name in names]
        picked = [i for i, score in enumerate(scores) if score > 0] or [0]
        if parallel is False:
            picked = [max(picked, key=lambda i: scores[i])]
    named = _Vocabulary(set().union(*(_name_parts(names[i]) for i in picked)))
    rest = " ".join(w for w in prompt.split() if (bare := w.lower().strip("?.!,")) not in _ASKING and not named.names(bare))
    calls = []
    for index in picked:
        function = tools[index].get("function", tools[index])
        args = fit_arguments(function.get("parameters") or {}, rest.strip(" ?.!,") or prompt)
        call_id = "call_" + format(zlib.crc32(f"{salt}:{index}:{prompt}".encode()), "08x")
        calls.append(PlannedCall(call_id, names[index], json.dumps(args, ensure_ascii=False)))
    return calls


def fit_arguments(schema: Any, text: str) -> dict[str, Any]:
    """Arguments for a JSON schema's required properties, taken from ``text`` where the type allows."""
    if not isinstance(schema, dict):
        return {}
    properties = schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    required = schema.get("required")
    required = required if isinstance(required, list) else []
    return {name: sample(properties.get(name, {}), text) for name in required if isinstance(name, str)}


def sample(schema: Any, text: str) -> Any:
    """A value that fits ``schema``: an enum's first value, numbers from the text, the text itself for strings.

    Any JSON schema is taken, a boolean one (``true``) or one with keywords
    of the wrong type included: the request checks schemas, but a model
    must not fail on one that slipped through.
    """
    if not isinstance(schema, dict):
        return text[:_MAX_STRING]  # true, or a schema that is not one: anything fits
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return sample(options[0], text)
    kind = schema.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind in ("number", "integer"):
        found = _NUMBER.search(text)
        value = next((v for v in (_finite(found.group() if found else None), _finite(schema.get("minimum"))) if v is not None), 1.0)
        return int(value) if kind == "integer" else value
    if kind == "boolean":
        return True
    if kind == "array":
        items = schema.get("items")
        return [sample(items if items is not None else {}, text)] if schema.get("minItems") else []
    if kind == "object":
        return fit_arguments(schema, text)
    if kind == "null":
        return None
    return text[:_MAX_STRING]


def _finite(value: Any) -> float | None:
    """``value`` as a finite float, or None: a 400-digit number in the prompt is no integer argument."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except (OverflowError, ValueError):
        return None
    return number if math.isfinite(number) else None


def answer_from_results(results: list[tuple[str, str]]) -> str:
    """What the model says once its tools have answered: (tool name, output) pairs, in order."""
    parts = []
    for name, output in results:
        shown = " ".join(output.split())
        if len(shown) > _MAX_STRING:
            shown = shown[: _MAX_STRING - 1] + "…"
        parts.append(f'The {name} tool returned "{shown}".')
    parts.append("That is what the tools found; the scripted model adds nothing of its own.")
    return " ".join(parts)
