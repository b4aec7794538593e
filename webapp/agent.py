"""The demo agent: ``create_agent`` on the configured model with a few harmless tools.

It is what most LangChain 1.x apps run, so anyone can watch tool calls,
heartbeats through a tool's pause, and results, with no key: the scripted
model calls these tools too. One tool is slow on purpose (seconds, bounded),
the length of a long silence for every proxy in front.
"""

from __future__ import annotations

import ast
import datetime
import functools
import logging
import math
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
    "You are a helpful assistant with tools. Use a tool when it can answer better than you can, then answer briefly from what it returned."
)
MAX_SLOW_SECONDS = 30.0
MAX_EXPRESSION_CHARS = 200

_ARITHMETIC = re.compile(r"[\d.\s()+\-*/%]+")
_OPERATORS: dict[type, Callable[..., Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


MAX_RESULT_DIGITS = 1000  # every intermediate result too: the work stays small, and str() of it is allowed
_RESULT_LIMIT = 10**MAX_RESULT_DIGITS


def _checked(value: Any) -> float | int:
    """A result the calculator can go on with: real, finite, and at most MAX_RESULT_DIGITS digits."""
    if isinstance(value, complex):
        raise ToolException("the result is not a real number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolException("the result is too large")
    if isinstance(value, int) and abs(value) >= _RESULT_LIMIT:
        raise ToolException(f"the result has more than {MAX_RESULT_DIGITS} digits")
    return value


def _evaluate(node: ast.AST) -> float | int:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _checked(node.value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _checked(_OPERATORS[type(node.op)](_evaluate(node.operand)))
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and (abs(right) > 64 or abs(left) > 1_000_000):
            raise ToolException("powers are limited to exponents up to 64 and bases up to 1,000,000")
        return _checked(_OPERATORS[type(node.op)](left, right))
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
    except OverflowError:
        raise ToolException("the result is too large") from None
    except (ArithmeticError, TypeError, ValueError, RecursionError) as exc:  # whatever else arithmetic raises is the tool's error
        raise ToolException(f"the arithmetic failed: {type(exc).__name__}") from None
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


def _tool_errors(fn: Callable[..., str]) -> Callable[..., str]:
    """``fn`` with every failure a ``ToolException``: LangChain turns only those into an error result.

    Anything else a tool raises would fail the whole run (an
    ``upstream_error``, retryable); the docs promise (docs/agents.md) a ``tool_result``
    with ``status: "error"`` and a run that goes on.
    """

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> str:
        try:
            return fn(*args, **kwargs)
        except ToolException:
            raise
        except Exception as exc:  # noqa: BLE001 - the model sees the error; the log has the traceback
            log.warning("tool %s failed", fn.__name__, exc_info=True)
            raise ToolException(f"the tool failed: {type(exc).__name__}") from None

    return guarded


def demo_tools(slow_seconds: float) -> list[BaseTool]:
    """The agent's tools; a bad argument or a failure is an error result the model sees, never a failed stream."""
    functions: list[Callable[..., str]] = [get_current_time, calculate, _slow_lookup(slow_seconds)]
    return [StructuredTool.from_function(_tool_errors(fn), handle_tool_error=True, handle_validation_error=True) for fn in functions]


def build_agent(model: BaseChatModel, slow_seconds: float) -> Runnable[Any, Any]:
    """The compiled agent graph (no checkpointer: each request carries its conversation)."""
    return create_agent(model, demo_tools(slow_seconds), system_prompt=SYSTEM_PROMPT, name="demo_agent")


MAX_EMAIL_FIELD_CHARS = 2000


def send_email(to: str, subject: str, body: str) -> str:
    """Send an email: it waits for a person's approval (approve, edit or reject) before it is sent."""
    for name, value in (("to", to), ("subject", subject), ("body", body)):
        if len(value) > MAX_EMAIL_FIELD_CHARS:
            raise ToolException(f"{name} is longer than {MAX_EMAIL_FIELD_CHARS} characters")
    # Harmless: nothing leaves the machine. The log line is the record (the tests count them: exactly once).
    log.info("email_queued", extra={"fields": {"to": to, "subject": subject}})
    return "queued"


def build_thread_agent(model: BaseChatModel, slow_seconds: float, checkpointer: Any) -> Runnable[Any, Any]:
    """The demo agent on threads: the same tools and ``send_email``, which stops for approval (HumanInTheLoopMiddleware)."""
    from langchain.agents.middleware import HumanInTheLoopMiddleware

    tools = [
        *demo_tools(slow_seconds),
        StructuredTool.from_function(_tool_errors(send_email), handle_tool_error=True, handle_validation_error=True),
    ]
    approval = HumanInTheLoopMiddleware(interrupt_on={"send_email": {"allowed_decisions": ["approve", "edit", "reject"]}})
    return create_agent(model, tools, system_prompt=SYSTEM_PROMPT, name="demo_agent", middleware=[approval], checkpointer=checkpointer)
