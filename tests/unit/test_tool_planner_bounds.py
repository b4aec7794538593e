"""Issue 22, finding 2: the scripted model's tool planner is linear in the prompt and the tools.

It runs on the worker's event loop, so its work must be bounded: the old
planner compared every part of every tool name with every word of the
prompt (128 tools and a 32,000-character prompt froze a gevent worker for
about 15 s). The old algorithm is kept here as the reference: it must pick
the same tools with the same arguments, and, counted, it makes millions of
comparisons on the input the new one plans in milliseconds.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.support.old_tool_planner import TooManyComparisons, reference_plan, worst_case
from uncut import tool_script
from uncut.tool_script import plan_tool_calls, tool_name

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
    tools = [
        {
            "type": "function",
            "function": {
                "name": n,
                "parameters": {"type": "object", "properties": {"x": {"type": "string"}, "n": {"type": "number"}}, "required": ["x", "n"]},
            },
        }
        for n in names
    ]
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
