"""Runs on a LangGraph thread: a new message, or the answer to a pending interrupt, checked before the first byte.

A thread is a graph's checkpointed conversation (``configurable.thread_id``).
What a request may do depends on its state, read with ``graph.get_state``:

- a new input while an interrupt is pending is refused (``interrupted``),
  unless the caller chose to reject the pending tool calls first;
- a resume with nothing pending is refused (``nothing_to_resume``);
- a resume must answer the pending interrupts: by interrupt id
  (``{"<id>": value}``), or as a bare value when exactly one is pending;
  an answer to ``HumanInTheLoopMiddleware`` is checked by uncut.approvals
  (``invalid_resume``, naming what is wrong).

Each refusal is a ``ThreadError`` with the HTTP status and error type the
adapters send as JSON. The one-run-per-thread lease (uncut.leases) is taken
by ``Streams.stream_thread`` before this check, so the state cannot change
between the check and the run. Imports no web framework.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, cast

from langchain_core.messages import ToolMessage
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig

from uncut.approvals import answer_problems, is_approval_request
from uncut.errors import Interrupted, InvalidResume, InvalidThread, NothingToResume, ThreadBusy, ThreadError
from uncut.events import jsonable

__all__ = [
    "Interrupted",
    "InvalidResume",
    "InvalidThread",
    "NOTHING",
    "NothingToResume",
    "PendingInterrupt",
    "ThreadBusy",
    "ThreadError",
    "pending_interrupts",
    "thread_config",
]

NOTHING: Any = object()  # "not given": a resume value may itself be None
MAX_THREAD_ID_CHARS = 128
REJECTED_FOR_NEW_MESSAGE = "The user sent a new message instead of answering this request."


@dataclass(frozen=True)
class PendingInterrupt:
    """An interrupt waiting for an answer: its id, what it asked, and the graph task that raised it."""

    id: str
    value: Any
    task: str
    response_schema: Any = None

    def shown(self) -> dict[str, Any]:
        """As clients see it (the ``interrupt`` event, ``GET`` of a thread)."""
        return {"id": self.id, "value": jsonable(self.value)}


@dataclass(frozen=True)
class Turn:
    """What to run: the graph's input (a new message, or a ``Command`` that resumes) and its config."""

    input: Any
    config: RunnableConfig
    resuming: bool
    pending: tuple[PendingInterrupt, ...]


def check_thread_id(thread_id: Any) -> str:
    if not isinstance(thread_id, str) or not thread_id or len(thread_id) > MAX_THREAD_ID_CHARS or not thread_id.isprintable():
        raise InvalidThread(f"a thread id is 1 to {MAX_THREAD_ID_CHARS} printable characters")
    return thread_id


def thread_config(thread_id: str, config: RunnableConfig | None = None) -> RunnableConfig:
    """``config`` with the thread's id in ``configurable``."""
    out = cast(RunnableConfig, dict(config or {}))  # a copy of a RunnableConfig (or of none)
    out["configurable"] = {**(out.get("configurable") or {}), "thread_id": check_thread_id(thread_id)}
    return out


@dataclass(frozen=True)
class FromState:
    """An ``input`` or ``resume`` worked out from the thread as it is once the run holds its lease.

    ``make(values, pending)`` gets the thread's state values and its pending
    interrupts, and returns the input or the resume value; it may raise a
    ``ThreadError``. A request whose turn depends on the thread (an AI SDK
    chat, ``uncut.ui_threads``) cannot read it earlier: another run could
    change it in between.
    """

    make: Callable[[Mapping[str, Any], "tuple[PendingInterrupt, ...]"], Any]


def pending_interrupts(graph: Runnable[Any, Any], config: RunnableConfig) -> tuple[PendingInterrupt, ...]:
    """The thread's interrupts that wait for an answer, in the order the graph raised them."""
    return _pending_of(graph.get_state(config))  # type: ignore[attr-defined]


def _pending_of(state: Any) -> tuple[PendingInterrupt, ...]:
    found = []
    for task in getattr(state, "tasks", ()) or ():
        for interrupt in getattr(task, "interrupts", ()) or ():
            found.append(PendingInterrupt(interrupt.id, interrupt.value, task.name, getattr(interrupt, "response_schema", None)))
    return tuple(found)


def graph_tools(graph: Runnable[Any, Any]) -> dict[str, Any]:
    """The tools of a ``create_agent`` graph by name (its ``tools`` node), to check edited arguments; else none."""
    while isinstance(graph, RunnableBinding):
        graph = graph.bound
    node = getattr(graph, "nodes", {}).get("tools")
    tools = getattr(getattr(node, "bound", None), "tools_by_name", None)
    return dict(tools) if isinstance(tools, Mapping) else {}


def plan_turn(
    graph: Runnable[Any, Any],
    thread_id: str,
    *,
    input: Any = NOTHING,
    resume: Any = NOTHING,
    reject_pending: bool = False,
    config: RunnableConfig | None = None,
    validate: bool = True,
) -> Turn:
    """The checked turn for this request, or a ``ThreadError``; give exactly one of ``input`` and ``resume``.

    ``reject_pending`` lets a new input through a pending approval: every
    pending call is answered as rejected first (the model sees why), so the
    conversation stays one a provider accepts. ``validate=False`` skips the
    answer checks (the negative control of the tests).
    """
    from langgraph.types import Command  # langgraph is needed only by thread runs

    if (input is NOTHING) == (resume is NOTHING):
        raise InvalidThread('give either a new input or a "resume" value, not both or neither')
    config = thread_config(thread_id, config)
    state = graph.get_state(config)  # type: ignore[attr-defined]
    pending = _pending_of(state)
    values = getattr(state, "values", None) or {}
    if isinstance(resume, FromState):
        resume = resume.make(values, pending)
    if isinstance(input, FromState):
        input = input.make(values, pending)
    if resume is not NOTHING:
        if not pending:
            raise NothingToResume(f"thread {thread_id} has no pending interrupt to resume")
        answers = _answers_by_id(pending, resume)
        if validate:
            _check_answers(graph, pending, answers)
        return Turn(Command(resume=answers), config, True, pending)
    if not pending:
        _close_unfinished(graph, config)
    if pending:
        if not reject_pending:
            raise Interrupted(
                f"thread {thread_id} waits for an answer to {len(pending)} interrupt(s): resume it, or send the message with"
                " reject_pending to reject the pending calls",
                interrupts=[p.shown() for p in pending],
            )
        _reject_pending(graph, config, pending)
    return Turn(input, config, False, pending)


def _answers_by_id(pending: tuple[PendingInterrupt, ...], resume: Any) -> dict[str, Any]:
    ids = [p.id for p in pending]
    if isinstance(resume, Mapping) and resume and all(isinstance(k, str) and k in ids for k in resume):
        missing = [i for i in ids if i not in resume]
        if missing:
            raise InvalidResume("every pending interrupt needs an answer", missing=missing)
        return dict(resume)
    if len(pending) > 1:
        raise InvalidResume(f"{len(pending)} interrupts are pending: answer each by id", interrupts=ids)
    return {pending[0].id: resume}


def _check_answers(graph: Runnable[Any, Any], pending: tuple[PendingInterrupt, ...], answers: Mapping[str, Any]) -> None:
    tools: dict[str, Any] | None = None
    problems: list[str] = []
    for interrupt in pending:
        if not is_approval_request(interrupt.value):
            continue  # a graph's own interrupt(): its node reads whatever the caller sends
        if tools is None:
            tools = graph_tools(graph)
        found = answer_problems(interrupt.value, answers[interrupt.id], response_schema=interrupt.response_schema, tools=tools)
        problems += [f"interrupt {interrupt.id}: {p}" if len(pending) > 1 else p for p in found]
    if problems:
        raise InvalidResume("; ".join(problems), problems=problems)


UNFINISHED = "The tool did not finish: the run stopped (the server restarted) before it returned."


def _close_unfinished(graph: Runnable[Any, Any], config: RunnableConfig) -> None:
    """A run that died mid-step (a worker killed) left tool calls with no answer: answer them, so the thread goes on.

    The last checkpoint holds the model's calls; the tools that were
    running never wrote theirs. A new input after that would send a
    conversation with unanswered calls, which providers refuse; each gets an
    error result saying the tool did not finish, and the model sees it.
    """
    state = graph.get_state(config)  # type: ignore[attr-defined]
    closing = _open_calls(state, UNFINISHED)
    if not closing:
        return
    if any(task.result is not None for task in getattr(state, "tasks", ())):
        # The run died after a step's writes were saved but before the checkpoint that
        # applies them (durability "async", or a kill between the two): the live state
        # shows them, a new input would not. Settle them into a checkpoint first.
        graph.update_state(config, None, as_node="__end__")  # type: ignore[attr-defined]  # langgraph.graph.END
        state = graph.get_state(config)  # type: ignore[attr-defined]
    nodes = getattr(graph, "nodes", {})
    as_node = "tools" if "tools" in nodes else (state.next[0] if state.next else None)
    graph.update_state(config, {"messages": closing}, as_node=as_node)  # type: ignore[attr-defined]


def _open_calls(state: Any, reason: str) -> list[ToolMessage]:
    """An error result for each tool call of the last model turn that has none yet."""
    messages = (getattr(state, "values", None) or {}).get("messages") or []
    last_ai = next((m for m in reversed(messages) if getattr(m, "tool_calls", None)), None)
    answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    return [
        ToolMessage(content=reason, name=call["name"], tool_call_id=call["id"], status="error")
        for call in (last_ai.tool_calls if last_ai is not None else [])
        if call.get("id") not in answered
    ]


def _reject_pending(graph: Runnable[Any, Any], config: RunnableConfig, pending: tuple[PendingInterrupt, ...]) -> None:
    """Answer every open tool call of the paused turn as rejected, in the state, without running anything.

    None of that turn's calls has run (the middleware pauses before the
    tools node), so each gets a rejection: the new input then follows a
    conversation a provider accepts, and the model sees why. Only approvals
    can be passed over this way: another interrupt is the graph's own question.
    """
    others = [p.id for p in pending if not is_approval_request(p.value)]
    if others:
        raise Interrupted("only pending approvals can be passed over by a new message; answer the others", interrupts=others)
    rejections = _open_calls(graph.get_state(config), f"User rejected the tool call with reason: {REJECTED_FOR_NEW_MESSAGE}")  # type: ignore[attr-defined]
    graph.update_state(config, {"messages": rejections}, as_node=pending[0].task)  # type: ignore[attr-defined]
