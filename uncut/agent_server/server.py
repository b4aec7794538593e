"""Internal: the Agent Server API, framework-free: a request in, a JSON reply or a run's event stream out.

``AgentServer`` is built from ``{graph_id: compiled graph}`` (each with its
checkpointer), the app's ``Streams`` (admission, the event-log store, leases,
budgets, drain) and a ``Records`` store. ``handle`` routes a request as
LangGraph's SDKs send it (``langgraph_sdk``, ``@langchain/langgraph-sdk``,
``RemoteGraph``); the adapters (uncut.flask, uncut.django, uncut.wsgi) turn
the ``Reply`` into their framework's response. Threads and runs belong to the
``owner`` the adapter names (an API key); another owner's are 404.

A run is a ``Streams.stream`` like any other (the producer greenlet, the log,
heartbeats, disconnect, budgets), streamed by ``GraphRun`` and framed by
``AgentFormat``; its id is its stream id, so ``GET .../runs/{id}/stream``
with ``Last-Event-ID`` rejoins it on any worker sharing the store.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, cast

from langchain_core.runnables import RunnableConfig

from uncut.admission import StreamLimiter
from uncut.agent_server.framing import AgentFormat, error_payload
from uncut.agent_server.records import MemoryRecords, Records
from uncut.agent_server.runs import GraphRun, RunRequest, check_resume, lease_key, parse_metadata, parse_run
from uncut.agent_server.wire import ASSISTANT_NAMESPACE, not_found, now_iso, to_json
from uncut.concurrency import spawn
from uncut.errors import ProtocolError, StreamNotFound, StreamRefused
from uncut.leases import LEASE_TTL_SECONDS, take_lease
from uncut.streams import HEADERS, StreamBody, Streams, fixed_retry_after
from uncut.threads import ThreadError, _pending_of

log = logging.getLogger(__name__)

API_VERSION = "0.1"
STATELESS_OWNER_PREFIX = "stateless:"
MAX_PAGE = 1000
MAX_BODY_BYTES = 1_048_576
RUN_END_WAIT_SECONDS = 5.0  # after a run's terminal event, how long its record may take to say so (another worker writes it)
THREAD_STATUSES = ("idle", "busy", "interrupted", "error")
RUN_STATUSES = ("pending", "running", "error", "success", "timeout", "interrupted")
SOCKET_KEYS = ("gunicorn.socket", "gunicorn.sock", "werkzeug.socket")
UNREAD_KEYS = (*SOCKET_KEYS, "opentelemetry-flask.span_key", "opentelemetry-flask.activation_key")
NOT_SERVED = (
    "not served here: this server serves the assistants (one per graph, read-only), threads, runs and stateless runs"
    " of the Agent Server API; not assistant writes, crons, the store, thread copy or thread streams"
)


@dataclass
class ApiRequest:
    """What the adapter read from its framework's request."""

    method: str
    path: str  # below the mount point, e.g. "/threads/abc/runs/stream"
    query: Mapping[str, list[str]] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""
    owner: str = "public"
    environ: Mapping[str, Any] = field(default_factory=dict)
    client: str | None = None

    def json(self) -> Any:
        if not self.body:
            return {}
        if len(self.body) > MAX_BODY_BYTES:
            raise ProtocolError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):
            raise ProtocolError(422, "the body is not valid JSON") from None

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None


@dataclass
class Reply:
    """A JSON reply (``stream`` None) or a run's event stream."""

    status: int = 200
    body: Any = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    frames: Iterator[bytes] | None = None
    producer: Any = None
    release: Callable[[], None] | None = None
    unread: Callable[[], None] | None = None

    @property
    def streaming(self) -> bool:
        return self.frames is not None

    @property
    def content_type(self) -> str:
        return "text/event-stream; charset=utf-8" if self.streaming else "application/json"

    def stream_body(self, wrap: Callable[[Iterator[bytes]], Iterator[bytes]] | None = None) -> StreamBody:
        """The body the server iterates and closes (``wrap``: the framework's request context, e.g. ``stream_with_context``)."""
        assert self.frames is not None
        return StreamBody(wrap(self.frames) if wrap is not None else self.frames, self.producer, self.release, self.unread)

    def json_bytes(self) -> bytes:
        return b"" if self.status == 204 else json.dumps(self.body, ensure_ascii=False).encode()


class MethodNotAllowed(ProtocolError):
    def __init__(self, method: str, allowed: list[str]) -> None:
        super().__init__(405, f"{method} is not allowed here; use {', '.join(allowed)}")
        self.allowed = allowed


def _int(value: str | int | None, name: str, default: int, low: int = 0, high: int = MAX_PAGE) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ProtocolError(422, f"{name} must be an integer") from None
    if isinstance(value, bool) or not low <= number <= high:
        raise ProtocolError(422, f"{name} must be from {low} to {high}")
    return number


def _looks_like_uuid(value: str) -> bool:
    """Thread and run ids are UUIDs: ``/threads/prune`` is an unserved route, not a thread called prune."""
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _uuid(value: Any, name: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ProtocolError(422, f"{name} must be a UUID") from None


def _matches(metadata: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    return all(metadata.get(k) == v for k, v in wanted.items())


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if not k.startswith("_")}


class AgentServer:
    """The routes, and what threads and runs are; see the module's docstring."""

    def __init__(
        self,
        graphs: Mapping[str, Any],
        streams: Streams,
        *,
        records: Records | None = None,
        checkpointer: Any = None,
        lease_seconds: float = LEASE_TTL_SECONDS,
        max_threads_per_owner: int = 10_000,
        runs_kept_per_thread: int = 100,
    ) -> None:
        if not graphs:
            raise ValueError("an Agent Server needs at least one graph")
        self.graphs = {name: self._with_checkpointer(name, graph, checkpointer) for name, graph in graphs.items()}
        self.streams = streams
        self.records: Records = records if records is not None else MemoryRecords()
        self.lease_seconds = lease_seconds
        self.max_threads_per_owner = max_threads_per_owner
        self.runs_kept_per_thread = runs_kept_per_thread
        # Runs are admitted against the fixed ceilings (max_concurrent_streams, max_streams_per_client), not the
        # event loop's lag: LangGraph's SDKs do not retry a 503 on a run (the Python SDK never, the JS SDK not on a
        # POST), and measured (bench/AGENT_SERVER.md), the lag-following line refused or delayed runs that, all
        # admitted, shared the CPU with a shorter tail.
        options = streams.options
        self.limiter = StreamLimiter(
            options.max_concurrent_streams, options.max_streams_per_client, start_budget=0, retry_after=fixed_retry_after(options)
        )
        self.assistants = {self.assistant_id(name): name for name in self.graphs}
        self._created = now_iso()
        self._routes = self._route_table()

    @staticmethod
    def _with_checkpointer(name: str, graph: Any, checkpointer: Any) -> Any:
        if checkpointer is not None:
            return graph.copy(update={"checkpointer": checkpointer})
        if getattr(graph, "checkpointer", None) in (None, False):
            raise ValueError(f"graph {name!r} has no checkpointer: compile it with one, or pass checkpointer=")
        return graph

    @staticmethod
    def assistant_id(graph_id: str) -> str:
        """One assistant per graph; its id is the same on every worker and after every restart."""
        return str(uuid.uuid5(ASSISTANT_NAMESPACE, graph_id))

    # -- dispatch ------------------------------------------------------------------------

    def _route_table(self) -> list[tuple[str, list[str], Callable[..., Reply]]]:
        T, R = "threads", "runs"
        return [
            ("GET", ["ok"], lambda r: Reply(body={"ok": True})),
            ("GET", ["info"], self.info),
            ("POST", ["assistants", "search"], self.search_assistants),
            ("POST", ["assistants", "count"], self.count_assistants),
            ("GET", ["assistants", "*"], self.get_assistant),
            ("GET", ["assistants", "*", "graph"], self.get_assistant_graph),
            ("GET", ["assistants", "*", "schemas"], self.get_assistant_schemas),
            ("GET", ["assistants", "*", "subgraphs"], lambda r, a: Reply(body={} if self._graph_of(a) else {})),
            ("POST", [T], self.create_thread),
            ("POST", [T, "search"], self.search_threads),
            ("POST", [T, "count"], self.count_threads),
            ("GET", [T, "#"], self.get_thread),
            ("PATCH", [T, "#"], self.patch_thread),
            ("DELETE", [T, "#"], self.delete_thread),
            ("GET", [T, "#", "state"], self.get_state),
            ("POST", [T, "#", "state"], self.update_state),
            ("GET", [T, "#", "state", "*"], self.get_state_at),
            ("POST", [T, "#", "state", "checkpoint"], self.get_state_at_body),
            ("POST", [T, "#", "history"], self.history),
            ("GET", [T, "#", "history"], self.history),
            ("POST", [T, "#", R, "stream"], lambda r, t: self.run_on_thread(r, t, "stream")),
            ("POST", [T, "#", R, "wait"], lambda r, t: self.run_on_thread(r, t, "wait")),
            ("POST", [T, "#", R], lambda r, t: self.run_on_thread(r, t, "background")),
            ("GET", [T, "#", R], self.list_runs),
            ("GET", [T, "#", R, "#"], self.get_run),
            ("DELETE", [T, "#", R, "#"], self.delete_run),
            ("GET", [T, "#", R, "#", "stream"], self.join_stream),
            ("GET", [T, "#", R, "#", "join"], self.join),
            ("POST", [T, "#", R, "#", "join"], self.join),
            ("POST", [T, "#", R, "#", "cancel"], self.cancel),
            ("POST", [R, "stream"], lambda r: self.run_stateless(r, "stream")),
            ("POST", [R, "wait"], lambda r: self.run_stateless(r, "wait")),
        ]

    def handle(self, request: ApiRequest) -> Reply:
        """The reply to ``request``: never raises for anything a client sends."""
        try:
            handler, args = self._route(request.method.upper(), request.path)
            return handler(request, *args)
        except MethodNotAllowed as exc:
            return Reply(405, exc.body(), [("Allow", ", ".join(exc.allowed))])
        except ProtocolError as exc:
            return Reply(exc.status, exc.body())
        except ThreadError as exc:
            return Reply(exc.status if exc.status != 400 else 422, {"detail": exc.message})
        except StreamRefused as exc:
            return Reply(exc.refusal.status, {"detail": exc.refusal.message}, exc.headers())
        except Exception:  # noqa: BLE001 - a failure here is ours: the client gets a 500 that says so, the log the trace
            log.exception("agent server: %s %s failed", request.method, request.path[:200])
            return Reply(500, {"detail": "internal server error"})

    def _route(self, method: str, path: str) -> tuple[Callable[..., Reply], list[str]]:
        parts = [p for p in path.split("/") if p]
        allowed: list[str] = []
        for route_method, pattern, handler in self._routes:
            if len(pattern) != len(parts):
                continue
            args = []
            for want, got in zip(pattern, parts):
                if want == "*" or (want == "#" and _looks_like_uuid(got)):
                    args.append(got)
                elif want != got:
                    break
            else:
                if route_method == method:
                    return handler, args
                allowed.append(route_method)
        if allowed:
            raise MethodNotAllowed(method, sorted(set(allowed)))
        for route_method, pattern, _ in self._routes:  # a thread or run id that is not one: 422, as LangGraph's server says
            if route_method == method and len(pattern) == len(parts) and all(want in ("*", "#", got) for want, got in zip(pattern, parts)):
                bad = next(i for i, (want, got) in enumerate(zip(pattern, parts)) if want == "#" and not _looks_like_uuid(got))
                raise ProtocolError(422, f"{parts[bad - 1][:-1]}_id must be a UUID")
        raise ProtocolError(404, f"{path[:200]} is {NOT_SERVED}")

    # -- assistants ----------------------------------------------------------------------

    def info(self, request: ApiRequest) -> Reply:
        from uncut import __version__

        return Reply(
            body={
                "version": __version__,
                "langgraph_py_version": _langgraph_version(),
                "flags": {"assistants": True, "crons": False, "langsmith": False, "langsmith_tracing_replicas": False},
                "host": {"kind": "uncut", "project_id": None, "revision_id": None, "tenant_id": None},
                "metadata": {},
            }
        )

    def _graph_of(self, assistant_id: Any) -> tuple[str, str, Any]:
        """``(assistant_id, graph_id, graph)`` for an assistant id or a graph id (the SDKs accept both)."""
        if isinstance(assistant_id, str):
            if assistant_id in self.graphs:
                return self.assistant_id(assistant_id), assistant_id, self.graphs[assistant_id]
            if assistant_id in self.assistants:
                name = self.assistants[assistant_id]
                return assistant_id, name, self.graphs[name]
        if assistant_id is None:
            raise ProtocolError(422, "assistant_id is required")
        raise not_found(f"assistant {str(assistant_id)[:64]!r}")

    def _assistant(self, graph_id: str) -> dict[str, Any]:
        return {
            "assistant_id": self.assistant_id(graph_id),
            "graph_id": graph_id,
            "name": graph_id,
            "description": None,
            "config": {},
            "context": {},
            "metadata": {"created_by": "system"},
            "version": 1,
            "created_at": self._created,
            "updated_at": self._created,
        }

    def search_assistants(self, request: ApiRequest) -> Reply:
        body = request.json()
        if not isinstance(body, dict):
            raise ProtocolError(422, "the body must be a JSON object")
        limit, offset = _int(body.get("limit"), "limit", 10), _int(body.get("offset"), "offset", 0, high=10**9)
        metadata = parse_metadata(body.get("metadata"))
        found = [
            self._assistant(name)
            for name in self.graphs
            if body.get("graph_id") in (None, name)
            and body.get("name") in (None, name)
            and _matches(self._assistant(name)["metadata"], metadata)
        ]
        return Reply(body=found[offset : offset + limit])

    def count_assistants(self, request: ApiRequest) -> Reply:
        body = request.json()
        graph_id = body.get("graph_id") if isinstance(body, dict) else None
        return Reply(body=sum(1 for name in self.graphs if graph_id in (None, name)))

    def get_assistant(self, request: ApiRequest, assistant_id: str) -> Reply:
        return Reply(body=self._assistant(self._graph_of(assistant_id)[1]))

    def get_assistant_graph(self, request: ApiRequest, assistant_id: str) -> Reply:
        graph = self._graph_of(assistant_id)[2]
        xray = request.arg("xray") in ("true", "1", "True")
        return Reply(body=to_json(graph.get_graph(xray=xray).to_json()))

    def get_assistant_schemas(self, request: ApiRequest, assistant_id: str) -> Reply:
        _, graph_id, graph = self._graph_of(assistant_id)

        def schema(read: Callable[[], Any]) -> Any:
            try:
                with warnings.catch_warnings():  # config_schema is deprecated for context_schema; clients still read it
                    warnings.simplefilter("ignore")
                    return to_json(read())
            except Exception:  # noqa: BLE001 - a graph whose schema pydantic cannot describe
                return {}

        return Reply(
            body={
                "graph_id": graph_id,
                "input_schema": schema(graph.get_input_jsonschema),
                "output_schema": schema(graph.get_output_jsonschema),
                "state_schema": schema(lambda: graph.get_output_jsonschema()),
                "config_schema": schema(graph.get_config_jsonschema),
                "context_schema": schema(graph.get_context_jsonschema) or {},
            }
        )

    # -- threads -------------------------------------------------------------------------

    def _thread(self, thread_id: str, owner: str) -> dict[str, Any]:
        """The owner's thread record; anyone else's, or none, is the same 404."""
        if len(thread_id) > 64:
            raise not_found("thread")
        found = self.records.get("thread", thread_id)
        if found is None or found[0] != owner:
            raise not_found(f"thread {thread_id!r}")
        return found[1]

    def _busy(self, thread_id: str) -> bool:
        return self.streams.leases.holder(lease_key(thread_id)) is not None

    def _thread_json(self, doc: dict[str, Any]) -> dict[str, Any]:
        shown = _public(doc)
        if self._busy(doc["thread_id"]):
            shown["status"] = "busy"
        elif shown.get("status") == "busy":  # its run's worker died before recording the end
            shown["status"] = "idle"
        return shown

    def new_thread(
        self, owner: str, thread_id: str, metadata: dict[str, Any], graph_id: str | None = None, temporary: bool = False
    ) -> dict[str, Any] | None:
        """A new thread record; None when the id is taken. A stateless run's (``temporary``) is never listed."""
        if self.records.count("thread", owner) >= self.max_threads_per_owner:
            raise ProtocolError(429, f"this key keeps {self.max_threads_per_owner} threads, the most allowed: delete some first")
        now = now_iso()
        doc = {
            "thread_id": thread_id,
            "created_at": now,
            "updated_at": now,
            "metadata": {**metadata, **({"graph_id": graph_id} if graph_id else {})},
            "status": "idle",
            "values": None,
            "interrupts": {},
            "config": {},
            **({"_temporary": True} if temporary else {}),
        }
        return doc if self.records.add("thread", thread_id, owner, thread_id, doc) else None

    def create_thread(self, request: ApiRequest) -> Reply:
        body = request.json()
        if not isinstance(body, dict):
            raise ProtocolError(422, "the body must be a JSON object")
        unknown = set(body) - {"thread_id", "metadata", "if_exists", "supersteps", "ttl", "graph_id"}
        if unknown:
            raise ProtocolError(422, f"unknown field {sorted(unknown)[0][:40]!r}")
        if body.get("supersteps"):
            raise ProtocolError(422, "supersteps is not served: create the thread, then update its state")
        if body.get("ttl"):
            raise ProtocolError(422, "ttl is not served: threads are kept until deleted")
        if_exists = body.get("if_exists") or "raise"
        if if_exists not in ("raise", "do_nothing"):
            raise ProtocolError(422, "if_exists must be raise or do_nothing")
        thread_id = _uuid(body["thread_id"], "thread_id") if body.get("thread_id") is not None else str(uuid.uuid4())
        metadata = parse_metadata(body.get("metadata"))
        doc = self.new_thread(request.owner, thread_id, metadata, body.get("graph_id") if isinstance(body.get("graph_id"), str) else None)
        if doc is None:
            if if_exists == "do_nothing":
                return Reply(body=self._thread_json(self._thread(thread_id, request.owner)))
            raise ProtocolError(409, f"thread {thread_id} already exists")
        return Reply(body=self._thread_json(doc))

    def _searched_threads(self, request: ApiRequest) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        body = request.json()
        if not isinstance(body, dict):
            raise ProtocolError(422, "the body must be a JSON object")
        metadata = parse_metadata(body.get("metadata"))
        values = parse_metadata(body.get("values"), "values")
        status = body.get("status")
        if status is not None and status not in THREAD_STATUSES:
            raise ProtocolError(422, f"status must be one of {', '.join(THREAD_STATUSES)}")
        ids = body.get("ids")
        if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
            raise ProtocolError(422, "ids must be a list of thread ids")
        threads = [self._thread_json(doc) for doc in self.records.find("thread", request.owner) if not doc.get("_temporary")]
        found = [
            t
            for t in threads
            if _matches(t.get("metadata") or {}, metadata)
            and _matches(t.get("values") or {}, values)
            and status in (None, t["status"])
            and (ids is None or t["thread_id"] in ids)
        ]
        return found, body

    def search_threads(self, request: ApiRequest) -> Reply:
        found, body = self._searched_threads(request)
        limit, offset = _int(body.get("limit"), "limit", 10), _int(body.get("offset"), "offset", 0, high=10**9)
        sort_by = body.get("sort_by") or "created_at"
        if sort_by not in ("thread_id", "status", "created_at", "updated_at"):
            raise ProtocolError(422, "sort_by must be thread_id, status, created_at or updated_at")
        order = body.get("sort_order") or "desc"
        if order not in ("asc", "desc"):
            raise ProtocolError(422, "sort_order must be asc or desc")
        found.sort(key=lambda t: str(t.get(sort_by)), reverse=order == "desc")
        return Reply(body=found[offset : offset + limit])

    def count_threads(self, request: ApiRequest) -> Reply:
        return Reply(body=len(self._searched_threads(request)[0]))

    def get_thread(self, request: ApiRequest, thread_id: str) -> Reply:
        return Reply(body=self._thread_json(self._thread(thread_id, request.owner)))

    def patch_thread(self, request: ApiRequest, thread_id: str) -> Reply:
        doc = self._thread(thread_id, request.owner)
        body = request.json()
        if not isinstance(body, dict) or set(body) - {"metadata", "ttl"}:
            raise ProtocolError(422, "a thread's patch holds metadata")
        if body.get("ttl"):
            raise ProtocolError(422, "ttl is not served: threads are kept until deleted")
        doc["metadata"] = {**(doc.get("metadata") or {}), **parse_metadata(body.get("metadata"))}
        doc["updated_at"] = now_iso()
        self.records.put("thread", thread_id, request.owner, thread_id, doc)
        return Reply(body=self._thread_json(doc))

    def delete_thread(self, request: ApiRequest, thread_id: str) -> Reply:
        self._thread(thread_id, request.owner)
        if self._busy(thread_id):
            raise ProtocolError(409, f"thread {thread_id} has a run in progress: cancel it first")
        self._forget_thread(thread_id, request.owner)
        return Reply(204)

    def _forget_thread(self, thread_id: str, owner: str) -> None:
        for run in self.records.find("run", owner, thread_id):
            self.records.delete("run", run["run_id"])
        self.records.delete("thread", thread_id)
        for graph in self.graphs.values():
            checkpointer = getattr(graph, "checkpointer", None)
            if checkpointer is not None:
                checkpointer.delete_thread(thread_id)
                break  # graphs share the server's checkpointer, or their own; one delete per saver is enough

    # -- state ---------------------------------------------------------------------------

    def _thread_graph(self, doc: dict[str, Any]) -> Any:
        graph_id = (doc.get("metadata") or {}).get("graph_id")
        return self.graphs.get(graph_id) if graph_id in self.graphs else next(iter(self.graphs.values()))

    def _config(self, thread_id: str, checkpoint: Mapping[str, Any] | None = None) -> dict[str, Any]:
        configurable: dict[str, Any] = {"thread_id": thread_id}
        if checkpoint:
            if not isinstance(checkpoint.get("checkpoint_id"), (str, type(None))):
                raise ProtocolError(422, "checkpoint_id must be a string")
            if checkpoint.get("checkpoint_id"):
                configurable["checkpoint_id"] = checkpoint["checkpoint_id"][:64]
            if checkpoint.get("checkpoint_ns"):
                configurable["checkpoint_ns"] = str(checkpoint["checkpoint_ns"])[:256]
        return {"configurable": configurable}

    def _state(self, request: ApiRequest, thread_id: str, checkpoint: Mapping[str, Any] | None) -> Reply:
        doc = self._thread(thread_id, request.owner)
        subgraphs = request.arg("subgraphs") in ("true", "1", "True")
        snapshot = self._thread_graph(doc).get_state(self._config(thread_id, checkpoint), subgraphs=subgraphs)
        if checkpoint and checkpoint.get("checkpoint_id") and snapshot.created_at is None:  # no such checkpoint: an empty snapshot
            raise not_found(f"checkpoint {str(checkpoint['checkpoint_id'])[:64]!r}")
        return Reply(body=state_json(snapshot, thread_id))

    def get_state(self, request: ApiRequest, thread_id: str) -> Reply:
        return self._state(request, thread_id, None)

    def get_state_at(self, request: ApiRequest, thread_id: str, checkpoint_id: str) -> Reply:
        return self._state(request, thread_id, {"checkpoint_id": checkpoint_id})

    def get_state_at_body(self, request: ApiRequest, thread_id: str) -> Reply:
        body = request.json()
        checkpoint = body.get("checkpoint") if isinstance(body, dict) else None
        if not isinstance(checkpoint, dict):
            raise ProtocolError(422, "checkpoint must be an object")
        return self._state(request, thread_id, checkpoint)

    def update_state(self, request: ApiRequest, thread_id: str) -> Reply:
        doc = self._thread(thread_id, request.owner)
        body = request.json()
        if not isinstance(body, dict) or set(body) - {"values", "as_node", "checkpoint", "checkpoint_id"}:
            raise ProtocolError(422, "a state update holds values, as_node, checkpoint or checkpoint_id")
        graph = self._thread_graph(doc)
        as_node = body.get("as_node")
        if as_node is not None and (not isinstance(as_node, str) or as_node not in graph.nodes):
            raise ProtocolError(422, "as_node must name a node of the graph")
        checkpoint = body.get("checkpoint") or ({"checkpoint_id": body["checkpoint_id"]} if body.get("checkpoint_id") else None)
        if checkpoint is not None and not isinstance(checkpoint, dict):
            raise ProtocolError(422, "checkpoint must be an object")
        lease = take_lease(self.streams.leases, lease_key(thread_id), self.lease_seconds)
        if lease is None:
            raise ProtocolError(409, f"thread {thread_id} has a run in progress: update its state when the run ends")
        try:
            try:
                config = graph.update_state(self._config(thread_id, checkpoint), body.get("values"), as_node=as_node)
            except (ValueError, TypeError, KeyError) as exc:  # langgraph's InvalidUpdateError is a ValueError
                raise ProtocolError(422, f"the update does not fit the graph's state: {str(exc)[:300]}") from None
            self._record_thread_state(graph, thread_id, request.owner)
        finally:
            lease.release()
        return Reply(body={"checkpoint": to_json(config.get("configurable", {}))})

    def history(self, request: ApiRequest, thread_id: str) -> Reply:
        doc = self._thread(thread_id, request.owner)
        body = request.json() if request.method == "POST" else {"limit": request.arg("limit"), "before": request.arg("before")}
        if not isinstance(body, dict):
            raise ProtocolError(422, "the body must be a JSON object")
        limit = _int(body.get("limit"), "limit", 10, low=1)
        before = body.get("before")
        if isinstance(before, str):
            before = {"checkpoint_id": before}
        if before is not None and not isinstance(before, dict):
            raise ProtocolError(422, "before must be a checkpoint")
        checkpoint = body.get("checkpoint")
        if checkpoint is not None and not isinstance(checkpoint, dict):
            raise ProtocolError(422, "checkpoint must be an object")
        metadata = parse_metadata(body.get("metadata"))
        graph = self._thread_graph(doc)
        states = graph.get_state_history(
            self._config(thread_id, checkpoint),
            limit=limit,
            filter=metadata or None,
            before=self._config(thread_id, before) if before else None,
        )
        return Reply(body=[state_json(s, thread_id) for s in states])

    def _record_thread_state(self, graph: Any, thread_id: str, owner: str, status: str | None = None) -> None:
        """The thread's record after a run or an update: its values, interrupts and status, as search shows them."""
        found = self.records.get("thread", thread_id)
        if found is None:
            return  # deleted meanwhile
        doc = found[1]
        snapshot = graph.get_state({"configurable": {"thread_id": thread_id}})
        pending = _pending_of(snapshot)
        interrupts: dict[str, list[Any]] = {}
        for task in snapshot.tasks:
            if task.interrupts:
                interrupts[task.id] = [to_json(i) for i in task.interrupts]
        doc["values"] = to_json(snapshot.values)
        doc["interrupts"] = interrupts
        doc["status"] = status if status == "error" else ("interrupted" if pending else "idle")
        doc["updated_at"] = now_iso()
        self.records.put("thread", thread_id, found[0], thread_id, doc)

    # -- runs ----------------------------------------------------------------------------

    def run_status(self, run_id: str, status: str) -> None:
        found = self.records.get("run", run_id)
        if found is not None:
            found[1].update(status=status, updated_at=now_iso())
            self.records.put("run", run_id, found[0], found[1]["thread_id"], found[1])

    def thread_busy(self, thread_id: str) -> None:
        self._mark_thread(thread_id, "busy")

    def _mark_thread(self, thread_id: str, status: str) -> None:
        found = self.records.get("thread", thread_id)
        if found is not None:
            found[1].update(status=status, updated_at=now_iso())
            self.records.put("thread", thread_id, found[0], thread_id, found[1])

    def note_start_checkpoint(self, run_id: str, graph: Any, config: Mapping[str, Any]) -> None:
        """Where the run starts from: what ``rollback`` goes back to."""
        found = self.records.get("run", run_id)
        if found is not None:
            current = graph.get_state({"configurable": {"thread_id": config["configurable"]["thread_id"]}})
            found[1]["_start_checkpoint"] = (current.config.get("configurable") or {}).get("checkpoint_id")
            self.records.put("run", run_id, found[0], found[1]["thread_id"], found[1])

    def run_over(self, run: GraphRun, status: str) -> None:
        """However a run ends: its record's status, and the thread's state as search shows it (or, stateless, no thread)."""
        if run.temporary and not run.request.keep_thread:
            self._forget_thread(run.thread_id, run.owner)
            return
        self.run_status(run.run_id, status)
        try:
            self._record_thread_state(run.graph, run.thread_id, run.owner, "error" if status == "error" else None)
        except Exception:  # noqa: BLE001 - a state the graph cannot read back: the thread says so
            log.exception("agent server: thread %s: reading its state after run %s failed", run.thread_id, run.run_id)
            self._mark_thread(run.thread_id, "error")

    def roll_back(self, graph: Any, run: Mapping[str, Any]) -> None:
        """Undo a cancelled run: its thread goes back to the checkpoint it started from, and the run is forgotten."""
        found = self.records.get("run", run["run_id"])
        start = (found[1] if found else run).get("_start_checkpoint")
        thread_id = run["thread_id"]
        if start is None:
            checkpointer = graph.checkpointer
            checkpointer.delete_thread(thread_id)  # the run started the thread: back to empty
        else:
            graph.update_state({"configurable": {"thread_id": thread_id, "checkpoint_id": start}}, None, as_node="__copy__")
        self.records.delete("run", run["run_id"])

    def _active_runs(self, owner: str, thread_id: str) -> list[dict[str, Any]]:
        return [r for r in self.records.find("run", owner, thread_id) if r["status"] in ("pending", "running")]

    def _start_run(self, request: ApiRequest, run: RunRequest, thread_id: str, *, temporary: bool, mode: str) -> tuple[str, Any]:
        """Admit and start a run on ``thread_id``; returns its id and relay. Refusals come before anything runs."""
        graph = self.graphs[run.graph_id]
        lease = None
        replaces: list[dict[str, Any]] = []
        if run.multitask == "reject" or temporary:
            lease = take_lease(self.streams.leases, lease_key(thread_id), self.lease_seconds)
            if lease is None:
                raise ProtocolError(409, f"thread {thread_id} is busy with another run (multitask_strategy reject)")
        try:
            if lease is not None:
                check_resume(graph, {"configurable": {"thread_id": thread_id}}, run.command)
            elif run.multitask in ("interrupt", "rollback"):
                replaces = self._active_runs(request.owner, thread_id)
            run_id = str(uuid.uuid4())
            self._prune_runs(request.owner, thread_id)
            self.records.put("run", run_id, request.owner, thread_id, new_run_record(run, run_id, thread_id))
            plan = GraphRun(
                self,
                run,
                graph,
                owner=request.owner,
                thread_id=thread_id,
                run_id=run_id,
                lease=lease,
                replaces=replaces,
                temporary=temporary,
            )
            config = run_config(run, run_id, thread_id)
            # A background run's relay is read here, by nobody: it must not watch the request's socket,
            # which goes on to carry the client's next request (keep-alive).
            # Nor may it keep the request's trace span open (uncut.otel takes a framework's request span over).
            environ = request.environ if mode != "background" else {k: v for k, v in request.environ.items() if k not in UNREAD_KEYS}
            try:
                relay = self.streams.stream(
                    graph,
                    None,
                    surface="agent",
                    environ=environ,
                    owner=request.owner,
                    client=request.client,
                    config=config,
                    stream_id=run_id,
                    plan=plan,
                    on_end=plan.ended,
                    limiter=self.limiter,
                    detached=mode == "background" or run.on_disconnect == "continue",
                    metadata={"graph_id": run.graph_id},
                    summary_fields={"run_id": run_id, "thread_id": thread_id},
                )
            except BaseException:
                self.records.delete("run", run_id)
                raise
        except BaseException:
            if lease is not None:
                lease.release()
            raise
        for old in replaces:  # after admission: a refused run cancels nothing
            self._cancel_run(old["run_id"], request.owner)
        return run_id, relay

    def _prune_runs(self, owner: str, thread_id: str) -> None:
        runs = self.records.find("run", owner, thread_id)
        for old in runs[self.runs_kept_per_thread - 1 :]:
            if old["status"] not in ("pending", "running"):
                self.records.delete("run", old["run_id"])

    def run_on_thread(self, request: ApiRequest, thread_id: str, mode: str) -> Reply:
        run = parse_run(request.json(), self._graph_of)
        thread_id = _uuid(thread_id, "thread_id") if self.records.get("thread", thread_id) is None else thread_id
        found = self.records.get("thread", thread_id)
        if found is None:
            if run.if_not_exists != "create":
                raise not_found(f"thread {thread_id!r}")
            self.new_thread(request.owner, thread_id, {}, run.graph_id)
            found = self.records.get("thread", thread_id)
        if found is None or found[0] != request.owner:
            raise not_found(f"thread {thread_id!r}")
        run_id, relay = self._start_run(request, run, thread_id, temporary=False, mode=mode)
        return self._reply(request, relay, run_id, thread_id, mode)

    def run_stateless(self, request: ApiRequest, mode: str) -> Reply:
        run = parse_run(request.json(), self._graph_of, stateless=True)
        thread_id = str(uuid.uuid4())
        self.new_thread(request.owner, thread_id, {}, run.graph_id, temporary=True)
        try:
            run_id, relay = self._start_run(request, run, thread_id, temporary=mode != "wait", mode=mode)
        except BaseException:
            self._forget_thread(thread_id, request.owner)
            raise
        if mode != "wait":
            return self._reply(request, relay, run_id, None, mode)
        try:  # the answer is the temporary thread's values: read them, then forget the thread
            reply = self._reply(request, relay, run_id, thread_id, mode)
            reply.headers = []
            return reply
        finally:
            if not run.keep_thread:
                self._forget_thread(thread_id, request.owner)

    def _reply(self, request: ApiRequest, relay: Any, run_id: str, thread_id: str | None, mode: str) -> Reply:
        where = [("Content-Location", f"/threads/{thread_id}/runs/{run_id}")] if thread_id else []
        if mode == "background":
            spawn(Streams.collect, relay, _nothing)  # runs it to its end like any run: budgets, summary, metrics
            return Reply(body=self._run_json(run_id, request.owner), headers=where)
        if mode == "wait":
            Streams.collect(relay, _nothing)
            return self._final(request.owner, run_id, thread_id, relay.log.last(), where)
        if thread_id:
            where = [("Location", f"/threads/{thread_id}/runs/{run_id}/stream"), *where]
        return self._stream_reply(relay, run_id, where)

    def _stream_reply(self, relay: Any, run_id: str, headers: list[tuple[str, str]]) -> Reply:
        return Reply(
            200,
            None,
            [*HEADERS, *headers],
            frames=relay.frames(AgentFormat(run_id).frame),
            producer=relay.producer,
            release=relay.release,
            unread=relay.close_unread,
        )

    def _final(self, owner: str, run_id: str, thread_id: str | None, last: Any, headers: list[tuple[str, str]]) -> Reply:
        """What ``wait`` and ``join`` answer: the thread's values, or ``{"__error__": ...}`` when the run failed."""
        if last is not None and last.kind == "error":
            return Reply(body={"__error__": error_payload(last.data)}, headers=headers)
        found = self.records.get("thread", thread_id) if thread_id is not None else None  # no record has a None key
        return Reply(body=(found[1].get("values") if found else None), headers=headers)

    def _run_json(self, run_id: str, owner: str) -> dict[str, Any]:
        found = self.records.get("run", run_id)
        if found is None or found[0] != owner:
            raise not_found(f"run {run_id!r}")
        return _public(found[1])

    def _run(self, request: ApiRequest, thread_id: str, run_id: str) -> dict[str, Any]:
        self._thread(thread_id, request.owner)
        run = self._run_json(run_id, request.owner)
        if run["thread_id"] != thread_id:
            raise not_found(f"run {run_id!r}")
        return run

    def list_runs(self, request: ApiRequest, thread_id: str) -> Reply:
        self._thread(thread_id, request.owner)
        limit, offset = _int(request.arg("limit"), "limit", 10), _int(request.arg("offset"), "offset", 0, high=10**9)
        status = request.arg("status")
        if status is not None and status not in RUN_STATUSES:
            raise ProtocolError(422, f"status must be one of {', '.join(RUN_STATUSES)}")
        runs = [_public(r) for r in self.records.find("run", request.owner, thread_id) if status in (None, r["status"])]
        return Reply(body=runs[offset : offset + limit])

    def get_run(self, request: ApiRequest, thread_id: str, run_id: str) -> Reply:
        return Reply(body=self._run(request, thread_id, run_id))

    def delete_run(self, request: ApiRequest, thread_id: str, run_id: str) -> Reply:
        run = self._run(request, thread_id, run_id)
        if run["status"] in ("pending", "running"):
            raise ProtocolError(409, f"run {run_id} is still {run['status']}: cancel it first")
        self.records.delete("run", run_id)
        return Reply(204)

    def _cancel_run(self, run_id: str, owner: str) -> None:
        try:
            self.streams.cancel(run_id, owner=owner)
        except StreamNotFound:
            self.run_status(run_id, "interrupted")  # its log expired: nothing runs it any more

    def _await_end(self, run_id: str, owner: str, timeout: float) -> Any:
        """Wait for the run's terminal event (on any worker sharing the store), then for its record; returns the event."""
        deadline = time.monotonic() + timeout
        log_ = self.streams.store.open(run_id)
        last = None
        if log_ is not None:
            seq = -1
            while time.monotonic() < deadline:
                events = log_.read_after(seq, min(5.0, max(0.0, deadline - time.monotonic())))
                if events:
                    seq = events[-1].seq if events[-1].seq is not None else seq
                    if events[-1].terminal:
                        last = events[-1]
                        break
                elif log_.finished:
                    last = log_.last()
                    break
        settle = time.monotonic() + RUN_END_WAIT_SECONDS
        while time.monotonic() < min(deadline, settle):
            found = self.records.get("run", run_id)
            if found is None or found[1]["status"] not in ("pending", "running"):
                break
            time.sleep(0.05)
        return last

    def join(self, request: ApiRequest, thread_id: str, run_id: str) -> Reply:
        self._run(request, thread_id, run_id)
        last = self._await_end(run_id, request.owner, self._join_timeout())
        return self._final(request.owner, run_id, thread_id, last, [])

    def _join_timeout(self) -> float:
        return float(self.streams.options.max_stream_seconds or 3600)

    def join_stream(self, request: ApiRequest, thread_id: str, run_id: str) -> Reply:
        self._run(request, thread_id, run_id)
        raw = request.headers.get("last-event-id") or request.arg("last_event_id")
        after = -1
        if raw:
            try:
                after = int(raw.rsplit(":", 1)[-1])
            except ValueError:
                raise ProtocolError(422, "Last-Event-ID must be an event id this server sent") from None
        try:
            relay = self.streams.follow(run_id, after, environ=request.environ, owner=request.owner, surface="agent", client=request.client)
        except StreamNotFound as exc:
            raise ProtocolError(404, str(exc)) from None
        if relay is None:  # the client has it all
            return Reply(200, None, list(HEADERS), frames=iter(()))
        return self._stream_reply(relay, run_id, [("Location", f"/threads/{thread_id}/runs/{run_id}/stream")])

    def cancel(self, request: ApiRequest, thread_id: str, run_id: str) -> Reply:
        run = self._run(request, thread_id, run_id)
        action = request.arg("action") or "interrupt"
        if action not in ("interrupt", "rollback"):
            raise ProtocolError(422, "action must be interrupt or rollback")
        wait = request.arg("wait") in ("1", "true", "True")
        if run["status"] in ("pending", "running"):
            self._cancel_run(run_id, request.owner)
        if action == "rollback" or wait:
            self._await_end(run_id, request.owner, RUN_END_WAIT_SECONDS * 2)
        if action == "rollback":
            lease = take_lease(self.streams.leases, lease_key(thread_id), self.lease_seconds)
            if lease is None:
                raise ProtocolError(409, f"run {run_id} has not stopped yet: try the rollback again")
            try:
                self.roll_back(self._thread_graph(self._thread(thread_id, request.owner)), run)
                self._record_thread_state(self._thread_graph(self._thread(thread_id, request.owner)), thread_id, request.owner)
            finally:
                lease.release()
        return Reply(204 if not wait else 200, None if not wait else {})


def _nothing(event: Any) -> bytes:
    return b""


def state_json(snapshot: Any, thread_id: str) -> dict[str, Any]:
    """A ``StateSnapshot`` as the SDKs' ``ThreadState``."""

    def checkpoint(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if not config:
            return None
        c = config.get("configurable") or {}
        return {
            "thread_id": c.get("thread_id", thread_id),
            "checkpoint_ns": c.get("checkpoint_ns", ""),
            "checkpoint_id": c.get("checkpoint_id"),
            "checkpoint_map": c.get("checkpoint_map"),
        }

    tasks = []
    interrupts: list[Any] = []
    for task in snapshot.tasks or ():
        task_interrupts = [to_json(i) for i in task.interrupts or ()]
        interrupts += task_interrupts
        state = getattr(task, "state", None)
        tasks.append(
            {
                "id": task.id,
                "name": task.name,
                "error": None if task.error is None else repr(task.error)[:2000],
                "interrupts": task_interrupts,
                "checkpoint": checkpoint(state) if isinstance(state, Mapping) else None,
                "state": state_json(state, thread_id) if state is not None and not isinstance(state, Mapping) else None,
                "result": to_json(task.result) if getattr(task, "result", None) is not None else None,
            }
        )
    return {
        "values": to_json(snapshot.values),
        "next": list(snapshot.next or ()),
        "checkpoint": checkpoint(snapshot.config)
        or {"thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": None, "checkpoint_map": None},
        "metadata": to_json(snapshot.metadata or {}),
        "created_at": snapshot.created_at,
        "parent_checkpoint": checkpoint(snapshot.parent_config),
        "tasks": tasks,
        "interrupts": interrupts,
    }


def _langgraph_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("langgraph")
    except PackageNotFoundError:
        return None


def new_run_record(run: RunRequest, run_id: str, thread_id: str) -> dict[str, Any]:
    """A run as the API lists it, before it starts."""
    now = now_iso()
    return {
        "run_id": run_id,
        "thread_id": thread_id,
        "assistant_id": run.assistant_id,
        "created_at": now,
        "updated_at": now,
        "status": "pending",
        "metadata": run.metadata,
        "multitask_strategy": run.multitask,
        "kwargs": {},
    }


def run_config(run: RunRequest, run_id: str, thread_id: str) -> RunnableConfig:
    """The run's own config, its metadata naming the run, thread, graph and assistant (as LangGraph's server does)."""
    metadata = {
        **(run.config.get("metadata") or {}),
        **run.metadata,
        "run_id": run_id,
        "thread_id": thread_id,
        "graph_id": run.graph_id,
        "assistant_id": run.assistant_id,
    }
    return cast(RunnableConfig, {**run.config, "metadata": metadata})  # run.config holds only RunnableConfig's keys (runs._config)
