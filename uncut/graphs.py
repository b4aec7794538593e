"""Internal: LangGraph graphs as first-class runnables: detected, streamed, and stoppable inside a tool.

A compiled graph (``langchain.agents.create_agent`` returns one) is streamed
from its sync ``graph.stream()`` with the modes that carry the rich events:
``messages`` (model chunks and every node's messages, tool results
included), ``updates`` (a node finished) and ``custom`` (what
``get_stream_writer()`` sent). langgraph is optional: without it no
runnable is a graph and nothing here imports it.

LangGraph runs a graph's nodes in its executor's threads, which are
greenlets under gevent. Killing the producer alone would leave a running
tool to finish first (the executor waits for its tasks on the way out), so
``TaskGreenlets`` remembers which greenlets are running a node, a tool or a
model call, and a cancel kills them where they block. Imports nothing from
Flask.
"""

from __future__ import annotations

import functools
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables import Runnable, RunnableBinding

from uncut.events import Emit, StreamEvents, jsonable

STREAM_MODES = ("messages", "updates", "custom")
INTERRUPT_KEY = "__interrupt__"


@functools.lru_cache(maxsize=1)
def _pregel_class() -> type | None:
    try:
        from langgraph.pregel import Pregel
    except ImportError:
        return None
    return Pregel


def is_graph(runnable: Runnable[Any, Any]) -> bool:
    """True for a compiled LangGraph graph, bare or wrapped by ``with_config`` / ``bind``."""
    pregel = _pregel_class()
    if pregel is None:
        return False
    while isinstance(runnable, RunnableBinding):
        runnable = runnable.bound
    return isinstance(runnable, pregel)


class GraphEvents(StreamEvents):
    """Events from ``graph.stream(stream_mode=STREAM_MODES)``: ``(mode, payload)`` items."""

    def __init__(self, emit: Emit) -> None:
        super().__init__(emit)
        self.steps = 0
        self.interrupted = False

    def feed(self, item: Any) -> None:
        if not isinstance(item, tuple) or len(item) not in (2, 3):
            return  # not a multi-mode item: nothing we know how to show
        mode, payload = item[-2], item[-1]  # (namespace, mode, payload) with subgraphs=True
        if mode == "messages":
            if isinstance(payload, tuple) and payload:
                self.message(payload[0])
        elif mode == "updates":
            if isinstance(payload, dict):
                self._updates(payload)
        elif mode == "custom":
            data = jsonable(payload)
            self._emit("custom", data if isinstance(data, dict) else {"data": data})

    def _updates(self, updates: dict[str, Any]) -> None:
        self.end_calls()  # a node finished: its model's calls are complete
        for node in updates:
            if node == INTERRUPT_KEY:
                self.interrupted = True
                values = updates[node] if isinstance(updates[node], (list, tuple)) else [updates[node]]
                self._emit("interrupt", {"interrupts": [_shown_interrupt(v) for v in values]})
                continue
            self.steps += 1
            self._emit("step", {"node": node, "step": self.steps})


def _shown_interrupt(interrupt: Any) -> dict[str, Any]:
    """``{"id", "value"}``: the id is what a resume names when several interrupts wait (``Command(resume={id: ...})``)."""
    return {"id": getattr(interrupt, "id", None), "value": jsonable(getattr(interrupt, "value", interrupt))}


class TaskGreenlets(BaseCallbackHandler):
    """Remembers the greenlets that run a graph's nodes, tools and model calls, to kill them on cancel.

    Callbacks run in the greenlet that does the work, so ``getcurrent()`` at
    a run's start is that run's greenlet; it is forgotten at the run's end.
    Only used under gevent, and only for graphs.
    """

    run_inline = True
    raise_error = False

    def __init__(self) -> None:
        self._running: dict[UUID, Any] = {}

    def _started(self, *args: Any, run_id: UUID, **kwargs: Any) -> None:
        from gevent import getcurrent

        self._running[run_id] = getcurrent()

    def _ended(self, *args: Any, run_id: UUID, **kwargs: Any) -> None:
        self._running.pop(run_id, None)

    on_chain_start = on_tool_start = on_chat_model_start = on_llm_start = _started
    on_chain_end = on_chain_error = on_tool_end = on_tool_error = on_llm_end = on_llm_error = _ended

    def kill(self, spare: Any = None) -> int:
        """Kill every greenlet still running part of the graph (but ``spare``); returns how many."""
        import gevent

        targets = {id(g): g for g in self._running.values() if g is not spare and not g.dead}
        self._running.clear()
        for greenlet in targets.values():
            gevent.kill(greenlet)  # asynchronous: the GreenletExit lands where it blocks
        return len(targets)
