"""The scripted model's tool planner as it was before issue 22, for negative controls.

It compared every part of every tool name with every word of the prompt:
128 tools and a 32,000-character prompt froze a gevent worker for about
15 s. ``reference_plan`` is that algorithm with its comparisons counted;
``worst_case`` is the input that shows it. ``old_planner_wsgi`` serves the
app with it swapped back in.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from uncut.tool_script import _ASKING, _WORD, PlannedCall, _chosen, _name_parts, fit_arguments, tool_name


class TooManyComparisons(Exception):
    pass


def reference_plan(
    prompt: str, tools: list[dict[str, Any]], tool_choice: Any, parallel: bool | None, salt: int, budget: int | None = None
) -> list[PlannedCall]:
    """The planner as it was before issue 22: every name part against every prompt word, counted."""
    compared = 0

    def matches(part: str, word: str) -> bool:
        nonlocal compared
        compared += 1
        if budget is not None and compared > budget:
            raise TooManyComparisons(compared)
        if part == word:
            return True
        stem = min(len(part), len(word))
        return stem >= 4 and part[:4] == word[:4]

    names = [tool_name(t) for t in tools]
    words = [w.lower() for w in _WORD.findall(prompt)]
    forced = _chosen(tool_choice, names)
    if forced is not None:
        picked = [names.index(forced)]
    else:
        scores = [sum(any(matches(part, w) for w in words) for part in _name_parts(name)) for name in names]
        picked = [i for i, score in enumerate(scores) if score > 0] or [0]
        if parallel is False:
            picked = [max(picked, key=lambda i: scores[i])]
    name_words = set().union(*(_name_parts(names[i]) for i in picked))
    rest = " ".join(
        w
        for w in prompt.split()
        if w.lower().strip("?.!,") not in _ASKING and not any(matches(part, w.lower().strip("?.!,")) for part in name_words)
    )
    calls = []
    for index in picked:
        function = tools[index].get("function", tools[index])
        args = fit_arguments(function.get("parameters") or {}, rest.strip(" ?.!,") or prompt)
        call_id = "call_" + format(zlib.crc32(f"{salt}:{index}:{prompt}".encode()), "08x")
        calls.append(PlannedCall(call_id, names[index], json.dumps(args, ensure_ascii=False)))
    return calls


def worst_case(prompt_chars: int = 32_000) -> tuple[str, list[dict[str, Any]]]:
    """128 tools with 64-character names of 21 parts each, none of them in the prompt (32,000 characters)."""
    tools = []
    for t in range(128):
        name = f"t{t:03d}" + "".join(f"_{chr(97 + p)}{chr(97 + (t + p) % 25)}" for p in range(20))
        tools.append(
            {
                "type": "function",
                "function": {"name": name, "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}},
            }
        )
    prompt = ("zz " * (prompt_chars // 3 + 1))[:prompt_chars]
    assert {len(tool_name(t)) for t in tools} == {64} and len({tool_name(t) for t in tools}) == 128
    return prompt, tools
