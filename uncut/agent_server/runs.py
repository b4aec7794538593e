"""Internal: a run request, checked field by field; and the plan that runs it in the producer greenlet.

``parse_run`` refuses a bad body before anything runs: every field the
SDKs send is typed and bounded, fields this server does not serve are
refused with a 422 that says so, and the config cannot name another
thread or checkpoint (``configurable`` keys that LangGraph reserves).

``GraphRun`` is the ``StreamPlan`` (uncut.producer): inside the producer
it waits for the thread (``enqueue``, ``interrupt``, ``rollback``), rolls
back what it replaces, streams ``graph.stream()`` with the client's modes,
and, however it ends, records the run's status and the thread's, and gives
the thread back.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, cast

from langchain_core.runnables import RunnableConfig

from uncut.agent_server.modes import ModeEvents, graph_modes, parse_modes
from uncut.errors import ProtocolError
from uncut.events import Emit, StreamEvents
from uncut.leases import Lease, LeaseStore, take_lease
from uncut.threads import InvalidResume, ThreadError, _answers_by_id, _check_answers, _pending_of

if TYPE_CHECKING:
    from uncut.agent_server.server import AgentServer

MULTITASK = ("reject", "interrupt", "rollback", "enqueue")
DISCONNECT = ("cancel", "continue")
DURABILITY = ("sync", "async", "exit")
MAX_RECURSION_LIMIT = 1000
MAX_METADATA_BYTES = 16_384
LEASE_POLL_SECONDS = 0.1
# configurable keys the server sets itself: a client naming them could read or write another thread.
RESERVED_CONFIGURABLE = ("thread_id", "checkpoint_id", "checkpoint_ns", "checkpoint_map", "run_id", "assistant_id", "graph_id", "user_id")
# Sent by the SDKs; accepted and without effect here (nothing to send feedback or traces to).
IGNORED_FIELDS = ("feedback_keys", "langsmith_tracer", "strict_resume", "checkpoint_during", "stream_resumable")
RUN_FIELDS = frozenset(
    {
        "assistant_id",
        "input",
        "command",
        "config",
        "context",
        "metadata",
        "stream_mode",
        "stream_subgraphs",
        "on_disconnect",
        "multitask_strategy",
        "interrupt_before",
        "interrupt_after",
        "checkpoint",
        "checkpoint_id",
        "if_not_exists",
        "durability",
        "on_completion",
        "webhook",
        "after_seconds",
        *IGNORED_FIELDS,
    }
)


@dataclass(frozen=True)
class RunRequest:
    """A run's options, checked."""

    assistant_id: str
    graph_id: str
    input: Any = None
    command: dict[str, Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    modes: tuple[str, ...] = ("values",)
    subgraphs: bool = False
    on_disconnect: str = "continue"
    multitask: str = "reject"
    interrupt_before: Any = None
    interrupt_after: Any = None
    checkpoint_id: str | None = None
    if_not_exists: str = "reject"
    durability: str | None = None
    keep_thread: bool = False  # stateless runs: keep the temporary thread (on_completion "keep")


def _choice(body: Mapping[str, Any], name: str, choices: tuple[str, ...], default: str) -> str:
    value = body.get(name, default)
    if value is None:
        return default
    if value not in choices:
        raise ProtocolError(422, f"{name} must be one of {', '.join(choices)}")
    return str(value)


def _object(body: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    value = body.get(name)
    if value is not None and not isinstance(value, dict):
        raise ProtocolError(422, f"{name} must be an object")
    return value


def parse_metadata(value: Any, name: str = "metadata") -> dict[str, Any]:
    """A metadata object: a JSON object of at most ``MAX_METADATA_BYTES``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProtocolError(422, f"{name} must be an object")
    if len(json.dumps(value)) > MAX_METADATA_BYTES:
        raise ProtocolError(422, f"{name} is larger than {MAX_METADATA_BYTES} bytes")
    return value


def _node_list(body: Mapping[str, Any], name: str, nodes: frozenset[str]) -> Any:
    value = body.get(name)
    if value is None or value == "*":
        return value
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise ProtocolError(422, f'{name} must be "*" or a list of node names')
    unknown = [n for n in value if n not in nodes]
    if unknown:
        raise ProtocolError(422, f"{name} names nodes the graph does not have: {', '.join(n[:40] for n in unknown[:5])}")
    return value


def _config(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProtocolError(422, "config must be an object")
    unknown = set(value) - {"configurable", "tags", "recursion_limit", "metadata", "run_name", "max_concurrency"}
    if unknown:
        raise ProtocolError(
            422, f"config may hold configurable, tags, recursion_limit, metadata, run_name, max_concurrency; not {sorted(unknown)[0][:40]}"
        )
    config: dict[str, Any] = {}
    configurable = value.get("configurable") or {}
    if not isinstance(configurable, dict):
        raise ProtocolError(422, "config.configurable must be an object")
    reserved = [k for k in configurable if k in RESERVED_CONFIGURABLE or k.startswith("__")]
    if reserved:
        raise ProtocolError(422, f"config.configurable may not set {reserved[0][:40]}: the server sets it")
    if configurable:
        config["configurable"] = dict(configurable)
    tags = value.get("tags")
    if tags is not None:
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags) or len(tags) > 64:
            raise ProtocolError(422, "config.tags must be a list of at most 64 strings")
        config["tags"] = tags
    limit = value.get("recursion_limit")
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_RECURSION_LIMIT:
            raise ProtocolError(422, f"config.recursion_limit must be an integer from 1 to {MAX_RECURSION_LIMIT}")
        config["recursion_limit"] = limit
    if value.get("metadata") is not None:
        config["metadata"] = parse_metadata(value["metadata"], "config.metadata")
    if value.get("run_name") is not None:
        if not isinstance(value["run_name"], str):
            raise ProtocolError(422, "config.run_name must be a string")
        config["run_name"] = value["run_name"][:200]
    if value.get("max_concurrency") is not None:
        if not isinstance(value["max_concurrency"], int) or not 1 <= value["max_concurrency"] <= 64:
            raise ProtocolError(422, "config.max_concurrency must be an integer from 1 to 64")
        config["max_concurrency"] = value["max_concurrency"]
    return config


def _command(value: Any, nodes: frozenset[str]) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise ProtocolError(422, "command must be an object with resume, update or goto")
    unknown = set(value) - {"resume", "update", "goto"}
    if unknown:
        raise ProtocolError(422, f"command may hold resume, update and goto; not {sorted(unknown)[0][:40]}")
    goto = value.get("goto")
    if goto is not None:
        targets = [goto] if isinstance(goto, str) else goto
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise ProtocolError(422, "command.goto must be a node name or a list of node names")
        unknown_nodes = [t for t in targets if t not in nodes]
        if unknown_nodes:
            raise ProtocolError(422, f"command.goto names a node the graph does not have: {unknown_nodes[0][:40]}")
    update = value.get("update")
    if update is not None and not isinstance(update, (dict, list)):
        raise ProtocolError(422, "command.update must be an object or a list of [key, value] pairs")
    return dict(value)


def _messages_fit(value: Any, name: str) -> None:
    """``messages`` in an input or update must be messages LangChain can read: a bad one would sit in the thread's
    checkpoint as a write that can never be applied, and every later read of the thread would fail."""
    if not isinstance(value, dict) or "messages" not in value:
        return
    from langchain_core.messages import convert_to_messages

    given = value["messages"]
    try:
        convert_to_messages(given if isinstance(given, list) else [given])
    except (ValueError, TypeError, KeyError, NotImplementedError) as exc:
        raise ProtocolError(422, f"{name}.messages holds something that is not a message: {str(exc)[:200]}") from None


def parse_run(body: Any, resolve_graph: Callable[[Any], tuple[str, str, Any]], *, stateless: bool = False) -> RunRequest:
    """The run ``body`` asks for, or a 422 naming the first field that is wrong."""
    if not isinstance(body, dict):
        raise ProtocolError(422, "the body must be a JSON object")
    unknown = set(body) - RUN_FIELDS
    if unknown:
        raise ProtocolError(422, f"unknown field {sorted(unknown)[0][:40]!r}")
    if body.get("webhook") is not None:
        raise ProtocolError(422, "webhook is not served: this server calls no URL on a client's behalf")
    if body.get("after_seconds"):
        raise ProtocolError(422, "after_seconds is not served: runs start when they are asked for")
    assistant_id, graph_id, graph = resolve_graph(body.get("assistant_id"))
    nodes = frozenset(getattr(graph, "nodes", {}) or ())
    command = _command(body.get("command"), nodes)
    if body.get("input") is not None and not isinstance(body["input"], dict):
        raise ProtocolError(422, "input must be an object (the graph's input) or null")
    _messages_fit(body.get("input"), "input")
    _messages_fit((command or {}).get("update"), "command.update")
    if command is not None and body.get("input") is not None:
        raise ProtocolError(422, "give input or command, not both")
    subgraphs = body.get("stream_subgraphs", False)
    if not isinstance(subgraphs, bool):
        raise ProtocolError(422, "stream_subgraphs must be true or false")
    checkpoint_id = body.get("checkpoint_id")
    checkpoint = _object(body, "checkpoint")
    if checkpoint is not None:
        checkpoint_id = checkpoint.get("checkpoint_id", checkpoint_id)
        if checkpoint.get("checkpoint_ns") not in (None, ""):
            raise ProtocolError(422, "checkpoint.checkpoint_ns must be empty: runs start from the root graph")
    if checkpoint_id is not None and (not isinstance(checkpoint_id, str) or len(checkpoint_id) > 64):
        raise ProtocolError(422, "checkpoint_id must be a checkpoint's id")
    if stateless and (checkpoint_id is not None or command is not None and "resume" in command):
        raise ProtocolError(422, "a stateless run has no thread: no checkpoint to start from and nothing to resume")
    return RunRequest(
        assistant_id=assistant_id,
        graph_id=graph_id,
        input=body.get("input"),
        command=command,
        config=_config(body.get("config")),
        context=_object(body, "context"),
        metadata=parse_metadata(body.get("metadata")),
        modes=parse_modes(body.get("stream_mode")),
        subgraphs=subgraphs,
        on_disconnect=_choice(body, "on_disconnect", DISCONNECT, "continue" if not stateless else "cancel"),
        multitask=_choice(body, "multitask_strategy", MULTITASK, "reject"),
        interrupt_before=_node_list(body, "interrupt_before", nodes),
        interrupt_after=_node_list(body, "interrupt_after", nodes),
        checkpoint_id=checkpoint_id,
        if_not_exists=_choice(body, "if_not_exists", ("reject", "create"), "reject"),
        durability=body.get("durability") if body.get("durability") is None else _choice(body, "durability", DURABILITY, "async"),
        keep_thread=_choice(body, "on_completion", ("delete", "keep"), "delete") == "keep",
    )


def check_resume(graph: Any, config: RunnableConfig, command: dict[str, Any] | None) -> None:
    """A ``command.resume`` must answer what the thread waits for (uncut.threads); raises ``ThreadError`` (as 4xx)."""
    if command is None or "resume" not in command:
        return
    pending = _pending_of(graph.get_state(config))
    if not pending:
        raise ProtocolError(409, "the thread has no pending interrupt to resume")
    try:
        _check_answers(graph, pending, _answers_by_id(pending, command["resume"]))
    except InvalidResume as exc:
        raise ProtocolError(422, f"invalid resume: {exc.message}") from exc


def graph_input(request: RunRequest) -> Any:
    from langgraph.types import Command

    if request.command is None:
        return request.input
    return Command(resume=request.command.get("resume"), update=request.command.get("update"), goto=request.command.get("goto") or ())


def lease_key(thread_id: str) -> str:
    return f"agent:{thread_id}"


class GraphRun:
    """One run of a graph on a thread, as the producer streams it (uncut.producer.StreamPlan)."""

    def __init__(
        self,
        server: "AgentServer",
        request: RunRequest,
        graph: Any,
        *,
        owner: str,
        thread_id: str,
        run_id: str,
        lease: Lease | None,
        replaces: list[dict[str, Any]],
        temporary: bool,
    ) -> None:
        self.server = server
        self.request = request
        self.graph = graph
        self.owner = owner
        self.thread_id = thread_id
        self.run_id = run_id
        self.lease = lease  # taken by the request (multitask "reject"); else waited for here
        self.replaces = replaces  # runs cancelled for this one; rolled back first with "rollback"
        self.temporary = temporary  # a stateless run's thread, deleted at the end
        self._streamed = False

    def ended(self) -> None:
        """The run is over (``Streams.stream``'s ``on_end``): if it never reached ``stream`` (cancelled before its
        first byte: a response closed unread), its lease and records are settled here instead."""
        if self._streamed:
            return
        self._streamed = True
        try:
            self.server.run_over(self, "interrupted")
        finally:
            if self.lease is not None:
                self.lease.release()

    def events(self, emit: Emit) -> StreamEvents:
        return ModeEvents(emit, self.request.modes)

    def _wait_for_thread(self, leases: LeaseStore, lease_seconds: float) -> Lease:
        """The thread's lease, once the run before this one gives it back (bounded by the run's own deadline)."""
        while True:
            lease = take_lease(leases, lease_key(self.thread_id), lease_seconds)
            if lease is not None:
                return lease
            producer = self.server.streams.producers.get(self.run_id)
            if producer is not None and producer.cancelled:  # without gevent a cancel cannot kill this wait
                raise GeneratorExit
            time.sleep(LEASE_POLL_SECONDS)  # under gevent a cancel kills us here

    def stream(self, config: RunnableConfig) -> Iterator[Any]:
        server, request = self.server, self.request
        status = "error"
        lease = self.lease
        self._streamed = True
        try:
            if lease is None:
                lease = self._wait_for_thread(server.streams.leases, server.lease_seconds)
            server.run_status(self.run_id, "running")
            server.thread_busy(self.thread_id)
            if request.multitask == "rollback":
                for run in self.replaces:
                    server.roll_back(self.graph, run)
            configurable: dict[str, Any] = {**(config.get("configurable") or {}), "thread_id": self.thread_id}
            thread_config = cast(RunnableConfig, {**config, "configurable": configurable})  # config with its configurable replaced
            if request.checkpoint_id:
                configurable["checkpoint_id"] = request.checkpoint_id
            if self.lease is None:  # not checked by the request: the thread may have changed while this run waited
                check_resume(self.graph, thread_config, request.command)
            server.note_start_checkpoint(self.run_id, self.graph, thread_config)
            options: dict[str, Any] = {"stream_mode": graph_modes(request.modes), "subgraphs": request.subgraphs}
            if request.context is not None:
                options["context"] = request.context
            if request.interrupt_before is not None:
                options["interrupt_before"] = request.interrupt_before
            if request.interrupt_after is not None:
                options["interrupt_after"] = request.interrupt_after
            if request.durability is not None:
                options["durability"] = request.durability
            yield from self.graph.stream(graph_input(request), thread_config, **options)
            status = "success"
        except (ProtocolError, ThreadError) as exc:
            raise RuntimeError(str(exc)) from exc  # the run's error event says why
        except GeneratorExit:
            status = "interrupted"
            raise
        except BaseException as exc:  # GreenletExit (a cancel) is not an Exception
            status = "error" if isinstance(exc, Exception) else "interrupted"
            raise
        finally:
            try:
                server.run_over(self, status)
            finally:
                if lease is not None:
                    lease.release()
