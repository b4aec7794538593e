"""Issue 22, finding 2: the scripted model's tool planner is linear in the prompt and the tools.

It runs on the worker's event loop, so its work must be bounded: the old
planner compared every part of every tool name with every word of the
prompt (128 tools and a 32,000-character prompt froze a gevent worker for
about 15 s). The old algorithm is kept here as the reference: it must pick
the same tools with the same arguments, and, counted, it makes millions of
comparisons on the input the new one plans in milliseconds.
"""

from __future__ import annotations

import json
import re
import time
import zlib
from typing import Any

import pytest

from uncut import tool_script
from uncut.tool_script import _ASKING, _WORD, PlannedCall, _chosen, _name_parts, fit_arguments, plan_tool_calls, tool_name


class TooManyComparisons(Exception):
    pass


def reference_plan(prompt: str, tools: list[dict[str, Any]], tool_choice: Any, parallel: bool | None, salt: int,
                   budget: int | None = None) -> list[PlannedCall]:
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
        w for w in prompt.split()
        if w.lower().strip("?.!,") not in _ASKING and not any(matches(part, w.lower().strip("?.!,")) for part in name_words)
    )
    calls = []
    for index in picked:
        function = tools[index].get("function", tools[index])
        args = fit_arguments(function.get("parameters") or {}, rest.strip(" ?.!,") or prompt)
        call_id = "call_" + format(zlib.crc32(f"{salt}:{index}:{prompt}".encode()), "08x")
        calls.append(PlannedCall(call_id, names[index], json.dumps(args, ensure_ascii=False)))
    return calls


def worst_case() -> tuple[str, list[dict[str, Any]]]:
    """128 tools with 64-character names of 21 parts each, none of them in a 32,000-character prompt."""
    tools = []
    for t in range(128):
        name = f"t{t:03d}" + "".join(f"_{chr(97 + p)}{chr(97 + (t + p) % 25)}" for p in range(20))
        tools.append({"type": "function", "function": {"name": name, "parameters": {
            "type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}})
    prompt = ("zz " * 10_667)[:32_000]
    assert {len(tool_name(t)) for t in tools} == {64} and len({tool_name(t) for t in tools}) == 128
    return prompt, tools


ORDINARY = [
    ("what is the weather in Paris and the time in Tokyo?", ["get_weather", "get_time", "lookupArchive"], None, None),
    ("look it up slowly please", ["slow_lookup", "calculate", "get_current_time"], None, False),
    ("calculate (6*7)+1 and tell me the time", ["slow_lookup", "calculate", "get_current_time"], None, None),
    ("nothing matches here", ["alpha", "beta"], None, None),
    ("weather please", ["get_weather", "get_time"], {"type": "function", "function": {"name": "get_time"}}, None),
    ("searching the docs for looking glass", ["search-docs", "lookGlass", "set_the_tool"], None, True),
]


@pytest.mark.parametrize("prompt, names, choice, parallel", ORDINARY)
def test_the_linear_planner_plans_what_the_old_one_did(prompt: str, names: list[str], choice: Any, parallel: Any) -> None:
    tools = [{"type": "function", "function": {"name": n, "parameters": {
        "type": "object", "properties": {"x": {"type": "string"}, "n": {"type": "number"}}, "required": ["x", "n"]}}} for n in names]
    assert plan_tool_calls(prompt, tools, choice, parallel, salt=3) == reference_plan(prompt, tools, choice, parallel, salt=3)


def test_128_tools_and_a_32000_character_prompt_are_planned_at_once() -> None:
    prompt, tools = worst_case()
    assert len(prompt) == 32_000 and len(tools) == 128
    started = time.perf_counter()
    calls = plan_tool_calls(prompt, tools, None, None, salt=1)
    took = time.perf_counter() - started
    assert len(calls) == 1 and calls[0].name == tool_name(tools[0])  # nothing matched: the first tool
    assert took < 1.0, f"planning took {took:.2f}s"  # about 10 ms; the old planner took many seconds


def test_negative_control_the_old_planner_makes_millions_of_comparisons_on_it() -> None:
    prompt, tools = worst_case()
    with pytest.raises(TooManyComparisons):
        reference_plan(prompt, tools, None, None, salt=1, budget=2_000_000)


def test_what_the_planner_reads_is_bounded() -> None:
    """Past MAX_PROMPT_CHARS and MAX_TOOLS nothing is looked at: the work has a ceiling, whatever the input."""
    tools = [{"type": "function", "function": {"name": f"tool{i}"}} for i in range(tool_script.MAX_TOOLS)]
    tools.append({"type": "function", "function": {"name": "weather"}})
    assert [c.name for c in plan_tool_calls("weather", tools, None, None, salt=0)] == ["tool0"]
    late = "x " * tool_script.MAX_PROMPT_CHARS + "weather"
    assert [c.name for c in plan_tool_calls(late, tools[-2:], None, None, salt=0)] != ["weather"]
    assert re.fullmatch(r"call_[0-9a-f]{8}", plan_tool_calls(late, tools, None, None, salt=0)[0].id)
