"""The demo agent: ``create_agent`` on the configured model with a few harmless tools.

It is what most LangChain 1.x apps run, so anyone can watch tool calls,
heartbeats through a tool's pause, and results, with no key: the scripted
model calls these tools too. One tool is slow on purpose (seconds, bounded),
the length of a long silence for every proxy in front.
"""

from __future__ import annotations

import ast
import datetime
import logging
import operator
import re
import time
from typing import Any, Callable

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool, StructuredTool, ToolException

log = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You are a helpful assistant with tools. Use a tool when it can answer better than you can, "
    "then answer briefly from what it returned."
)
MAX_SLOW_SECONDS = 30.0
MAX_EXPRESSION_CHARS = 200

_ARITHMETIC = re.compile(r"[\d.\s()+\-*/%]+")
_OPERATORS: dict[type, Callable[..., Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
    ast.USub: operator.neg, ast.UAdd: operator.pos,
}


def _evaluate(node: ast.AST) -> float | int:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and (abs(right) > 64 or abs(left) > 1_000_000):
            raise ToolException("powers are limited to exponents up to 64 and bases up to 1,000,000")
        return _OPERATORS[type(node.op)](left, right)
    raise ToolException("only numbers, + - * / // % ** and parentheses are allowed")


def calculate(expression: str) -> str:
    """Evaluate the arithmetic in the text: numbers, + - * / // % ** and parentheses."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolException(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    candidates = [part.strip() for part in _ARITHMETIC.findall(expression) if any(c.isdigit() for c in part)]
    if not candidates:
        raise ToolException("there is no arithmetic in the expression")
    try:
        result = _evaluate(ast.parse(max(candidates, key=len), mode="eval"))
    except SyntaxError:
        raise ToolException("the arithmetic is not well formed") from None
    except ZeroDivisionError:
        raise ToolException("division by zero") from None
    return str(result)


def get_current_time() -> str:
    """The current date and time in UTC, ISO 8601."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _slow_lookup(default_seconds: float) -> Callable[..., str]:
    def slow_lookup(topic: str, seconds: float | None = None) -> str:
        """Look a topic up in a slow archive; it takes a few seconds (at most 30)."""
        wait = default_seconds if seconds is None else seconds
        if not 0 <= wait <= MAX_SLOW_SECONDS:
            raise ToolException(f"seconds must be from 0 to {MAX_SLOW_SECONDS:g}")
        time.sleep(wait)  # cooperative under gevent: a pause for the proxies, not for the worker
        log.info("slow_lookup finished after %gs", wait)  # a cancelled run's tool never gets here
        return f"The archive has a note on {topic!r}: streams stay open through long tool calls when heartbeats flow."

    return slow_lookup


def demo_tools(slow_seconds: float) -> list[BaseTool]:
    """The agent's tools; a bad argument is an error result the model sees, never a failed stream."""
    functions = [get_current_time, calculate, _slow_lookup(slow_seconds)]
    return [StructuredTool.from_function(fn, handle_tool_error=True, handle_validation_error=True) for fn in functions]


def build_agent(model: BaseChatModel, slow_seconds: float) -> Runnable[Any, Any]:
    """The compiled agent graph (no checkpointer: each request carries its conversation)."""
    return create_agent(model, demo_tools(slow_seconds), system_prompt=SYSTEM_PROMPT, name="demo_agent")
