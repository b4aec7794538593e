"""How the scripted model uses tools: which to call, with what arguments, and what to say after.

Deterministic, so tests and demos can predict it: a tool is chosen by the
words of its name that appear in the prompt (every such tool, when parallel
calls are allowed), its arguments are built from its JSON schema and the
prompt, and after the tools answer the model reports what they returned.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass
from typing import Any

# Name parts too common to say which tool the user meant.
_FILLER = frozenset({"get", "set", "do", "run", "tool", "the", "a", "an", "of", "for", "to", "and"})
# Words left out of a string argument: they ask, they do not say what about.
_ASKING = frozenset({"what", "is", "it", "me", "please", "tell", "up", "in", "on", "about", "also", "can", "you", "i", "my", "with"}) | _FILLER
_WORD = re.compile(r"[A-Za-z0-9]+")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_MAX_STRING = 200


@dataclass(frozen=True)
class PlannedCall:
    id: str
    name: str
    arguments: str  # JSON text, streamed in fragments


def _name_parts(name: str) -> set[str]:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    return {part.lower() for part in re.split(r"[_\-\s]+", spaced) if part and part.lower() not in _FILLER}


def _matches(part: str, word: str) -> bool:
    """A prompt word names a part of a tool's name: the same word, or the same stem (look/lookup, slow/slowly)."""
    if part == word:
        return True
    stem = min(len(part), len(word))
    return stem >= 4 and part[:4] == word[:4]


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
    names = [tool_name(t) for t in tools]
    words = [w.lower() for w in _WORD.findall(prompt)]
    forced = _chosen(tool_choice, names)
    if forced is not None:
        picked = [names.index(forced)]
    else:
        scores = [sum(any(_matches(part, w) for w in words) for part in _name_parts(name)) for name in names]
        picked = [i for i, score in enumerate(scores) if score > 0] or [0]
        if parallel is False:
            picked = [max(picked, key=lambda i: scores[i])]
    name_words = set().union(*(_name_parts(names[i]) for i in picked))
    rest = " ".join(
        w for w in prompt.split()
        if w.lower().strip("?.!,") not in _ASKING and not any(_matches(part, w.lower().strip("?.!,")) for part in name_words)
    )
    calls = []
    for index in picked:
        function = tools[index].get("function", tools[index])
        args = fit_arguments(function.get("parameters") or {}, rest.strip(" ?.!,") or prompt)
        call_id = "call_" + format(zlib.crc32(f"{salt}:{index}:{prompt}".encode()), "08x")
        calls.append(PlannedCall(call_id, names[index], json.dumps(args, ensure_ascii=False)))
    return calls


def fit_arguments(schema: dict[str, Any], text: str) -> dict[str, Any]:
    """Arguments for a JSON schema's required properties, taken from ``text`` where the type allows."""
    properties = schema.get("properties") or {}
    return {name: sample(properties.get(name) or {}, text) for name in schema.get("required") or [] if isinstance(name, str)}


def sample(schema: dict[str, Any], text: str) -> Any:
    """A value that fits ``schema``: an enum's first value, numbers from the text, the text itself for strings."""
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return sample(schema[key][0], text)
    kind = schema.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind in ("number", "integer"):
        found = _NUMBER.search(text)
        value = float(found.group()) if found else float(schema.get("minimum", 1))
        return int(value) if kind == "integer" else value
    if kind == "boolean":
        return True
    if kind == "array":
        return [sample(schema.get("items") or {}, text)] if schema.get("minItems") else []
    if kind == "object":
        return fit_arguments(schema, text)
    if kind == "null":
        return None
    return text[:_MAX_STRING]


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
