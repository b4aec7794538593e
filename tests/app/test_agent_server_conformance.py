# Schema: tests/support/agent_server_openapi.json is openapi.json from the langgraph-api package, version 0.16.7, vendored verbatim.
"""Every response of every route /langgraph serves, checked against the Agent Server's own OpenAPI document.

The schema is tests/support/agent_server_openapi.json: ``openapi.json`` exactly as the
langgraph-api 0.16.7 wheel ships it (installed at site-packages/openapi.json, listed in
langgraph_api-0.16.7.dist-info/RECORD, sha256 25903f3bc462fdf43558e46ba3c72118aaff32cc30a2730336e53382bf43667e).

A response is valid when the body validates (JSON Schema 2020-12, ``$ref``s resolved
into the document, ``uuid`` and ``date-time`` formats checked) against the schema the
document declares for its (path, method, status). Where this server answers otherwise
on purpose, the difference is one entry of ``DEVIATIONS``, excused only on the routes
and at the places it names; the bugs it found (a run input the state cannot
take, a 405 without Allow) have tests of their own at the end. Run streams are decoded with the Python SDK's own SSE
decoder, and each event's data checked where the document (or langgraph-api's stream)
says what it holds. Routes this server does not serve are ``NOT_SERVED``: each must
answer 404 or 405 with a ``detail``, and every other route of the document must have
been exercised by the walk.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator, FormatChecker
from langgraph_sdk.sse import BytesLineDecoder, SSEDecoder
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from tests.conftest import FAST_SCRIPTED
from uncut.agent_server.runs import lease_key
from uncut.flask import current_streams
from uncut.leases import Lease, take_lease
from webapp import create_app

SCHEMA_FILE = Path(__file__).parents[1] / "support" / "agent_server_openapi.json"
SCHEMA_SOURCE = ("langgraph-api", "0.16.7")
SPEC_URI = "urn:langgraph-api:0.16.7:openapi"
BASE = "/langgraph"
METHODS = ("get", "post", "put", "patch", "delete")
EMAIL = "please send email to bob about lunch"
APPROVE = {"decisions": [{"type": "approve"}]}
NO_SUCH = "00000000-0000-4000-8000-000000000000"

# -- deviations ----------------------------------------------------------------------------------

STATE_ROUTES = (
    "GET /threads/{thread_id}/state",
    "GET /threads/{thread_id}/state/{checkpoint_id}",
    "POST /threads/{thread_id}/state/checkpoint",
    "GET /threads/{thread_id}/history",
    "POST /threads/{thread_id}/history",
)
THREAD_ROUTES = ("POST /threads", "GET /threads/{thread_id}", "PATCH /threads/{thread_id}", "POST /threads/search")


@dataclass(frozen=True)
class NullField:
    """The schema types a field (as object, string...) that we send as null: excused there, on those routes, only for null."""

    routes: tuple[str, ...]
    at: tuple[str, ...]  # JSONPath of the field in the body; [*] is any index
    reason: str

    def excuses(self, route: str, error: Any) -> bool:
        """Whether ``error`` (a jsonschema ValidationError on ``route``'s body) is this deviation."""
        return (
            route in self.routes
            and error.validator == "type"
            and error.instance is None
            and any(re.fullmatch(re.escape(at).replace(r"\[\*\]", r"\[\d+\]"), error.json_path) for at in self.at)
        )


@dataclass(frozen=True)
class OtherStatus:
    """A status the schema does not declare for the route; its body is ``empty`` or ``error`` (an ErrorResponse)."""

    routes: tuple[str, ...]
    status: int
    body: str
    reason: str


DEVIATIONS: tuple[NullField | OtherStatus, ...] = (
    NullField(
        THREAD_ROUTES,
        ("$.values", "$[*].values"),
        "a thread no run has touched has no values: langgraph-api 0.16.7 itself creates threads with"
        ' "values": None (langgraph_runtime_inmem/ops.py, Threads.put); langgraph_sdk types Thread.values as Json (nullable)',
    ),
    NullField(
        ("GET /threads/{thread_id}/state",),
        ("$.created_at", "$.checkpoint.checkpoint_id"),
        "the state of a thread with no checkpoint yet: langgraph_sdk types ThreadState.created_at as str | None and"
        " Checkpoint.checkpoint_id as str | None; langgraph-api passes StateSnapshot.created_at (None) through as well",
    ),
    NullField(
        STATE_ROUTES,
        ("$.checkpoint.checkpoint_map", "$[*].checkpoint.checkpoint_map"),
        "langgraph_sdk's Checkpoint has checkpoint_map: dict | None (@langchain/langgraph-sdk 1.15.0: Optional<Record<string, unknown>>);"
        " the schema types it object. langgraph-api omits the key instead of sending null",
    ),
    NullField(
        STATE_ROUTES,
        ("$.parent_checkpoint", "$[*].parent_checkpoint"),
        "the root checkpoint (or a thread with none) has no parent: langgraph_sdk types parent_checkpoint as Checkpoint | None"
        ' ("If missing, this is the root checkpoint"); langgraph-api sends None too (langgraph_api/state.py)',
    ),
    NullField(
        STATE_ROUTES,
        (
            "$.tasks[*].error",
            "$.tasks[*].checkpoint",
            "$.tasks[*].state",
            "$[*].tasks[*].error",
            "$[*].tasks[*].checkpoint",
            "$[*].tasks[*].state",
        ),
        "a task that did not fail and has no subgraph: langgraph_sdk's ThreadTask has error: str | None,"
        " checkpoint: Checkpoint | None, state: ThreadState | None (the JS SDK's are Optional<...>);"
        " langgraph-api sends None for each (langgraph_api/state.py)",
    ),
    OtherStatus(
        ("DELETE /threads/{thread_id}", "DELETE /threads/{thread_id}/runs/{run_id}"),
        204,
        "empty",
        "the schema declares 200 with {}; langgraph-api 0.16.7 answers 204 with no body (api/threads.py delete_thread,"
        " api/runs.py delete_run), and so does this server; the SDKs read an empty 2xx body as None",
    ),
    OtherStatus(
        ("POST /threads/{thread_id}/runs/{run_id}/cancel",),
        204,
        "empty",
        "without ?wait the schema declares 200 with {}; langgraph-api 0.16.7 answers 202 with no body (api/runs.py"
        " cancel_run), this server 204 with no body; the SDKs read either as None",
    ),
    OtherStatus(
        STATE_ROUTES + ("POST /threads/{thread_id}/state",),
        404,
        "error",
        "the state and history routes declare only 200 and 422, yet a thread that does not exist (or is another"
        " key's) can only be a 404, as langgraph-api answers too; the body is the schema's ErrorResponse",
    ),
    OtherStatus(
        ("DELETE /threads/{thread_id}", "POST /threads/{thread_id}/state", "DELETE /threads/{thread_id}/runs/{run_id}"),
        409,
        "error",
        "deleting a thread or updating its state while a run holds it, or deleting a run still pending, is refused"
        " with 409 (the SDKs' ConflictError) rather than done under the run; the body is the schema's ErrorResponse",
    ),
)

# Routes of the document this server does not serve: each must answer 404 or 405 with a detail.
NOT_SERVED = (
    "POST /assistants",
    "PATCH /assistants/{assistant_id}",
    "DELETE /assistants/{assistant_id}",
    "GET /assistants/{assistant_id}/subgraphs/{namespace}",
    "POST /assistants/{assistant_id}/versions",
    "POST /assistants/{assistant_id}/latest",
    "POST /threads/prune",
    "GET /threads/{thread_id}/storage",
    "POST /threads/{thread_id}/copy",
    "GET /threads/{thread_id}/stream",
    "POST /threads/{thread_id}/stream/events",
    "POST /threads/{thread_id}/commands",
    "POST /threads/{thread_id}/runs/crons",
    "POST /runs/crons",
    "POST /runs/crons/search",
    "POST /runs/crons/count",
    "GET /runs/crons/{cron_id}",
    "PATCH /runs/crons/{cron_id}",
    "DELETE /runs/crons/{cron_id}",
    "POST /runs",
    "POST /runs/batch",
    "POST /runs/cancel",
    "PUT /store/items",
    "DELETE /store/items",
    "GET /store/items",
    "POST /store/items/search",
    "POST /store/namespaces",
    "POST /a2a/{assistant_id}",
    "POST /mcp/",
    "GET /mcp/",
    "DELETE /mcp/",
    "GET /metrics",
    "GET /docs",
)

# -- the schema ----------------------------------------------------------------------------------

FORMATS = FormatChecker()
RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    """RFC 3339, as JSON Schema's date-time (jsonschema checks it only with rfc3339-validator, not installed)."""
    return not isinstance(value, str) or bool(RFC3339.fullmatch(value) and datetime.fromisoformat(value))


def ref(pointer: str) -> dict[str, str]:
    return {"$ref": f"{SPEC_URI}#{pointer}"}


INTERRUPTS = {"type": "array", "items": ref("/components/schemas/Interrupt")}
MESSAGE = {"type": "object", "required": ["type", "content"]}
# What each run-stream event holds. The document types the stream as a string; these are langgraph-api's
# events (langgraph_api/stream.py), typed with the document's own schemas where it has them.
EVENT_SCHEMAS: dict[str, Any] = {
    "metadata": {
        "type": "object",
        "required": ["run_id", "attempt"],
        "properties": {"run_id": {"type": "string", "format": "uuid"}, "attempt": {"type": "integer", "minimum": 1}},
    },
    "values": {"allOf": [ref("/components/schemas/ThreadState/properties/values")], "properties": {"__interrupt__": INTERRUPTS}},
    "updates": {"type": "object", "properties": {"__interrupt__": INTERRUPTS}},
    "messages": {"type": "array", "prefixItems": [MESSAGE, {"type": "object"}], "minItems": 2, "maxItems": 2},
    "messages/metadata": {"type": "object", "additionalProperties": {"type": "object", "required": ["metadata"]}},
    "messages/partial": {"type": "array", "items": MESSAGE},
    "messages/complete": {"type": "array", "items": MESSAGE},
    "checkpoints": {"type": "object", "required": ["config", "metadata", "values", "next", "tasks"]},
    "tasks": {"type": "object", "required": ["id", "name"]},
    "debug": {"type": "object", "required": ["type", "step", "payload"]},
    "custom": {},
    "error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
    },
    "end": {"type": "null"},
}


def pointer(*parts: str) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


@dataclass
class Spec:
    """The OpenAPI document as validators, and which deviations a run of checks leaned on."""

    doc: dict[str, Any]
    used: set[tuple[int, str]] = field(default_factory=set)  # (index in DEVIATIONS, route)
    registry: Registry = field(init=False)
    _validators: dict[str, Draft202012Validator] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.registry = Registry().with_resource(SPEC_URI, DRAFT202012.create_resource(self.doc))

    def routes(self) -> set[str]:
        """Every operation of the document, as "METHOD /path"."""
        return {f"{m.upper()} {path}" for path, ops in self.doc["paths"].items() for m in ops if m in METHODS}

    def operation(self, route: str) -> dict[str, Any] | None:
        """The document's operation for ``route``, or None."""
        method, path = route.split(" ", 1)
        return self.doc["paths"].get(path, {}).get(method.lower())

    def validator(self, schema: dict[str, Any]) -> Draft202012Validator:
        """A validator of ``schema``, whose refs resolve into the document (cached)."""
        key = json.dumps(schema, sort_keys=True)
        if key not in self._validators:
            self._validators[key] = Draft202012Validator(schema, registry=self.registry, format_checker=FORMATS)
        return self._validators[key]

    def errors(self, route: str, schema: dict[str, Any], body: Any, what: str) -> list[str]:
        """``body``'s errors against ``schema``, less those a NullField of DEVIATIONS excuses on ``route``."""
        problems = []
        for error in self.validator(schema).iter_errors(body):
            excused = [i for i, d in enumerate(DEVIATIONS) if isinstance(d, NullField) and d.excuses(route, error)]
            if excused:
                self.used.add((excused[0], route))
            else:
                problems.append(f"{route} {what}: {error.json_path}: {error.message[:300]}")
        return problems

    def request_problems(self, route: str, body: Any) -> list[str]:
        """Our request as the document allows it (so the server is tested with what an SDK may send)."""
        content = ((self.operation(route) or {}).get("requestBody") or {}).get("content") or {}
        if "application/json" not in content:
            return []
        method, path = route.split(" ", 1)
        return self.errors(
            route, ref(pointer("paths", path, method.lower(), "requestBody", "content", "application/json", "schema")), body, "request"
        )

    def response_problems(self, route: str, status: int, mimetype: str, raw: bytes) -> list[str]:
        """What is wrong with a response, against the document and DEVIATIONS: nothing, for a valid one."""
        method, path = route.split(" ", 1)
        op = self.operation(route)
        declared = (op or {}).get("responses", {}).get(str(status))
        if declared is None:
            excused = [i for i, d in enumerate(DEVIATIONS) if isinstance(d, OtherStatus) and route in d.routes and d.status == status]
            if not excused:
                return [f"{route} answered {status}; the schema declares {sorted((op or {}).get('responses', {}))}"]
            self.used.add((excused[0], route))
            deviation = DEVIATIONS[excused[0]]
            assert isinstance(deviation, OtherStatus)
            if deviation.body == "empty":
                return [] if not raw else [f"{route} {status}: a body where none is due: {raw[:200]!r}"]
            schema = ref("/components/schemas/ErrorResponse")
        else:
            content = declared.get("content") or {}
            if not content:
                return [] if not raw else [f"{route} {status}: a body where the schema declares none: {raw[:200]!r}"]
            if mimetype not in content:
                return [f"{route} {status}: content type {mimetype}, the schema declares {sorted(content)}"]
            if mimetype == "text/event-stream":
                return []  # the stream's events: stream_problems
            schema = ref(pointer("paths", path, method.lower(), "responses", str(status), "content", mimetype, "schema"))
        if mimetype != "application/json":
            return [f"{route} {status}: content type {mimetype}, not application/json"]
        try:
            body = json.loads(raw)
        except ValueError:
            return [f"{route} {status}: the body is not JSON: {raw[:200]!r}"]
        return self.errors(route, schema, body, f"{status}")

    def stream_problems(self, route: str, events: list[Any]) -> list[str]:
        """A run's stream: metadata first (run_id, attempt), ids increasing, each event's data as EVENT_SCHEMAS says, end or error last."""
        if not events:
            return [f"{route}: an empty stream"]
        problems = []
        first, last = events[0], events[-1]
        if first.event != "metadata":
            problems.append(f"{route}: the first event is {first.event!r}, not metadata")
        if last.event not in ("end", "error"):
            problems.append(f"{route}: the stream ends with {last.event!r}, not end or error")
        ids = [int(e.id) for e in events if e.id is not None and e.id.isdigit()]
        if len(ids) != len(events) or ids != sorted(set(ids)):
            problems.append(f"{route}: event ids are not increasing integers: {[e.id for e in events]}")
        for event in events:
            schema = EVENT_SCHEMAS.get(event.event.split("|", 1)[0])
            if schema is None:
                problems.append(f"{route}: event {event.event!r} is none the protocol names")
            else:
                problems += self.errors(route, schema, event.data, f"event {event.event} id {event.id}")
        return problems


def decode_sse(raw: bytes) -> list[Any]:
    """The stream as langgraph_sdk reads it (its own line and event decoders)."""
    lines, decoder = BytesLineDecoder(), SSEDecoder()
    parts = [decoder.decode(bytes(line)) for line in [*lines.decode(raw), *lines.flush(), b""]]
    return [p for p in parts if p is not None and p.event]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text())


@pytest.fixture
def spec(document: dict[str, Any]) -> Spec:
    return Spec(document)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    store = tmp_path_factory.mktemp("agent_server_conformance") / "threads.db"
    return create_app({**FAST_SCRIPTED, "WEBAPP_THREAD_STORE": f"sqlite:///{store}"}, environ={})


# -- the client ----------------------------------------------------------------------------------


class Api:
    """Requests by route ("POST /threads/{thread_id}/runs"), each response checked before the test sees it."""

    def __init__(self, client: FlaskClient, spec: Spec) -> None:
        """Requests through ``client``, checked against ``spec``."""
        self.client = client
        self.spec = spec
        self.served: set[str] = set()  # routes that answered 2xx

    def call(self, route: str, expect: int, body: Any = None, *, query: str = "", raw: bytes | None = None, **params: str) -> Any:
        """The decoded body (a list of events for a stream), after asserting the status and the schema."""
        method, template = route.split(" ", 1)
        if body is not None and expect < 400:
            assert not (problems := self.spec.request_problems(route, body)), "\n".join(problems)
        url = BASE + template.format(**params) + (f"?{query}" if query else "")
        if raw is not None:
            response = self.client.open(url, method=method, data=raw, content_type="application/json")
        else:
            response = self.client.open(url, method=method, json=body)
        data = response.get_data()
        response.close()
        assert response.status_code == expect, f"{route} ({url}): {response.status_code}, not {expect}: {data[:500]!r}"
        problems = self.spec.response_problems(route, response.status_code, response.mimetype, data)
        if 200 <= response.status_code < 300:
            self.served.add(route)
        if response.mimetype == "text/event-stream":
            events = decode_sse(data)
            problems += self.spec.stream_problems(route, events)
            assert not problems, "\n".join(problems)
            return events
        assert not problems, "\n".join(problems)
        return json.loads(data) if data else None

    def error(self, route: str, expect: int, body: Any = None, **kwargs: Any) -> str:
        """A refusal: its status, an ErrorResponse ({"detail": ...}) per the schema, and the detail."""
        found = self.call(route, expect, body, **kwargs)
        assert isinstance(found, dict) and isinstance(found.get("detail"), str) and found["detail"], found
        return found["detail"]


def user(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def hold(app: Flask, thread_id: str) -> Lease:
    """The thread's lease, as a run in another worker would hold it."""
    with app.app_context():
        lease = take_lease(current_streams().leases, lease_key(thread_id), 30)
    assert lease is not None
    return lease


def run_id_of(events: list[Any]) -> str:
    return events[0].data["run_id"]


# -- the walk ------------------------------------------------------------------------------------


def walk_meta_and_assistants(api: Api) -> None:
    assert api.call("GET /ok", 200) == {"ok": True}
    assert api.call("GET /info", 200)["flags"]["crons"] is False
    (assistant,) = api.call("POST /assistants/search", 200, {"graph_id": "agent", "limit": 10, "offset": 0})
    assert api.call("POST /assistants/count", 200, {"graph_id": "agent"}) == 1
    for name in (assistant["assistant_id"], "agent"):  # the SDKs accept an assistant id or a graph id
        assert api.call("GET /assistants/{assistant_id}", 200, assistant_id=name)["graph_id"] == "agent"
        assert api.call("GET /assistants/{assistant_id}/graph", 200, query="xray=true", assistant_id=name)["nodes"]
        assert api.call("GET /assistants/{assistant_id}/schemas", 200, assistant_id=name)["graph_id"] == "agent"
        api.call("GET /assistants/{assistant_id}/subgraphs", 200, assistant_id=name)
    for route in (
        "GET /assistants/{assistant_id}",
        "GET /assistants/{assistant_id}/graph",
        "GET /assistants/{assistant_id}/schemas",
        "GET /assistants/{assistant_id}/subgraphs",
    ):
        api.error(route, 404, assistant_id=NO_SUCH)
    api.error("POST /assistants/search", 422, {"limit": "ten"})


def walk_threads(api: Api) -> str:
    """A thread's life from creation to deletion, with an approval in the middle; returns the deleted thread's id."""
    fresh = api.call("POST /threads", 200, {"metadata": {"suite": "conformance"}})
    tid = fresh["thread_id"]
    assert api.call("POST /threads", 200, {"thread_id": tid, "if_exists": "do_nothing"})["thread_id"] == tid
    api.error("POST /threads", 409, {"thread_id": tid})
    assert api.call("GET /threads/{thread_id}", 200, thread_id=tid)["status"] == "idle"
    assert api.call("PATCH /threads/{thread_id}", 200, {"metadata": {"step": 1}}, thread_id=tid)["metadata"]["step"] == 1
    assert tid in [t["thread_id"] for t in api.call("POST /threads/search", 200, {"metadata": {"suite": "conformance"}, "limit": 100})]
    assert api.call("POST /threads/count", 200, {"metadata": {"suite": "conformance"}}) >= 1
    assert api.call("GET /threads/{thread_id}/state", 200, thread_id=tid)["next"] == []  # no checkpoint yet
    assert api.call("POST /threads/{thread_id}/history", 200, {"limit": 5}, thread_id=tid) == []

    ask = {"assistant_id": "agent", "input": user(EMAIL), "stream_mode": ["values", "updates", "messages-tuple"]}
    paused = api.call("POST /threads/{thread_id}/runs/stream", 200, ask, thread_id=tid)
    assert {"values", "updates", "messages"} <= {e.event for e in paused} and paused[-1].event == "end"
    assert any("__interrupt__" in e.data for e in paused if e.event == "updates")
    thread = api.call("GET /threads/{thread_id}", 200, thread_id=tid)
    assert thread["status"] == "interrupted" and thread["interrupts"]
    state = api.call("GET /threads/{thread_id}/state", 200, thread_id=tid)
    assert state["interrupts"] and state["tasks"][0]["interrupts"]

    done = api.call("POST /threads/{thread_id}/runs/wait", 200, {"assistant_id": "agent", "command": {"resume": APPROVE}}, thread_id=tid)
    assert done["messages"][-1]["type"] == "ai"
    history = api.call("POST /threads/{thread_id}/history", 200, {"limit": 100}, thread_id=tid)
    assert len(history) > 2 and history[-1]["parent_checkpoint"] is None
    assert len(api.call("GET /threads/{thread_id}/history", 200, query="limit=100", thread_id=tid)) == len(history)
    root = history[-1]["checkpoint"]["checkpoint_id"]
    at_root = api.call("GET /threads/{thread_id}/state/{checkpoint_id}", 200, thread_id=tid, checkpoint_id=root)
    assert at_root["checkpoint"]["checkpoint_id"] == root
    assert api.call("POST /threads/{thread_id}/state/checkpoint", 200, {"checkpoint": {"checkpoint_id": root}}, thread_id=tid) == at_root
    missing = "1f000000-0000-6000-8000-000000000000"  # a checkpoint id of the right form the thread does not have
    api.error("GET /threads/{thread_id}/state/{checkpoint_id}", 404, thread_id=tid, checkpoint_id=missing)
    api.error("POST /threads/{thread_id}/state/checkpoint", 404, {"checkpoint": {"checkpoint_id": missing}}, thread_id=tid)
    updated = api.call("POST /threads/{thread_id}/state", 200, {"values": {"messages": []}, "as_node": "model"}, thread_id=tid)
    assert updated["checkpoint"]["checkpoint_id"]

    runs = api.call("GET /threads/{thread_id}/runs", 200, query="limit=10", thread_id=tid)
    assert [r["status"] for r in runs] == ["success", "success"]
    first = run_id_of(paused)
    assert api.call("GET /threads/{thread_id}/runs/{run_id}", 200, thread_id=tid, run_id=first)["run_id"] == first
    replay = api.call("GET /threads/{thread_id}/runs/{run_id}/stream", 200, thread_id=tid, run_id=first)
    assert [e.data for e in replay] == [e.data for e in paused]

    api.call("DELETE /threads/{thread_id}", 204, thread_id=tid)
    api.error("GET /threads/{thread_id}", 404, thread_id=tid)
    return tid


def walk_runs(api: Api, app: Flask) -> None:
    """Background, join, cancel and delete; a run waiting for a busy thread; every refusal a busy thread gets."""
    tid = api.call("POST /threads", 200, {})["thread_id"]
    run = api.call("POST /threads/{thread_id}/runs", 200, {"assistant_id": "agent", "input": user("what time is it")}, thread_id=tid)
    assert run["status"] in ("pending", "running") and run["thread_id"] == tid
    joined = api.call("GET /threads/{thread_id}/runs/{run_id}/join", 200, thread_id=tid, run_id=run["run_id"])
    assert joined["messages"][-1]["type"] == "ai"
    assert api.call("GET /threads/{thread_id}/runs/{run_id}", 200, thread_id=tid, run_id=run["run_id"])["status"] == "success"
    assert api.call("POST /threads/{thread_id}/runs/{run_id}/cancel", 200, query="wait=1", thread_id=tid, run_id=run["run_id"]) == {}
    api.call("DELETE /threads/{thread_id}/runs/{run_id}", 204, thread_id=tid, run_id=run["run_id"])
    api.error("GET /threads/{thread_id}/runs/{run_id}", 404, thread_id=tid, run_id=run["run_id"])

    lease = hold(app, tid)
    try:
        assert api.call("GET /threads/{thread_id}", 200, thread_id=tid)["status"] == "busy"
        ask = {"assistant_id": "agent", "input": user("hello")}
        for route in ("POST /threads/{thread_id}/runs", "POST /threads/{thread_id}/runs/wait", "POST /threads/{thread_id}/runs/stream"):
            assert "busy" in api.error(route, 409, ask, thread_id=tid)
        waiting = api.call("POST /threads/{thread_id}/runs", 200, {**ask, "multitask_strategy": "enqueue"}, thread_id=tid)
        assert api.call("GET /threads/{thread_id}/runs/{run_id}", 200, thread_id=tid, run_id=waiting["run_id"])["status"] == "pending"
        assert api.call("GET /threads/{thread_id}/runs", 200, query="status=pending", thread_id=tid)[0]["run_id"] == waiting["run_id"]
        api.error("DELETE /threads/{thread_id}/runs/{run_id}", 409, thread_id=tid, run_id=waiting["run_id"])
        api.error("DELETE /threads/{thread_id}", 409, thread_id=tid)
        api.error("POST /threads/{thread_id}/state", 409, {"values": {"messages": []}, "as_node": "model"}, thread_id=tid)
        api.call("POST /threads/{thread_id}/runs/{run_id}/cancel", 204, thread_id=tid, run_id=waiting["run_id"])
    finally:
        lease.release()
    api.call("GET /threads/{thread_id}/runs/{run_id}/join", 200, thread_id=tid, run_id=waiting["run_id"])
    deadline = time.monotonic() + 5
    while (
        api.call("GET /threads/{thread_id}", 200, thread_id=tid)["status"] == "busy"
        or (status := api.call("GET /threads/{thread_id}/runs/{run_id}", 200, thread_id=tid, run_id=waiting["run_id"])["status"])
        == "pending"
    ):
        assert time.monotonic() < deadline, "a cancelled run still pending (or its thread busy) 5 s after the thread was free"
        time.sleep(0.05)
    assert status == "interrupted"
    api.call("DELETE /threads/{thread_id}", 204, thread_id=tid)


def walk_stateless(api: Api) -> None:
    values = api.call("POST /runs/wait", 200, {"assistant_id": "agent", "input": user("hello")})
    assert values["messages"][0]["content"] == "hello"
    events = api.call(
        "POST /runs/stream",
        200,
        {
            "assistant_id": "agent",
            "input": user("hello"),
            "stream_mode": ["messages", "updates", "checkpoints", "tasks", "debug", "custom"],
        },
    )
    assert {"messages/metadata", "messages/partial", "checkpoints", "tasks", "debug"} <= {e.event for e in events}


def walk_refusals(api: Api, gone: str) -> None:
    """404 for what does not exist, 422 for what cannot be read: each an ErrorResponse."""
    tid = api.call("POST /threads", 200, {})["thread_id"]
    ask = {"assistant_id": "agent", "input": user("hello")}
    for route in (
        "GET /threads/{thread_id}",
        "PATCH /threads/{thread_id}",
        "DELETE /threads/{thread_id}",
        "GET /threads/{thread_id}/runs",
        "GET /threads/{thread_id}/state",
        "GET /threads/{thread_id}/history",
    ):
        api.error(route, 404, {} if route.startswith("PATCH") else None, thread_id=gone)
    for route, body in (
        ("POST /threads/{thread_id}/runs", ask),
        ("POST /threads/{thread_id}/runs/wait", ask),
        ("POST /threads/{thread_id}/runs/stream", ask),
        ("POST /threads/{thread_id}/history", {}),
        ("POST /threads/{thread_id}/state", {"values": {}}),
        ("POST /threads/{thread_id}/state/checkpoint", {"checkpoint": {"checkpoint_id": "x"}}),
    ):
        api.error(route, 404, body, thread_id=gone)
    api.error("GET /threads/{thread_id}/state/{checkpoint_id}", 404, thread_id=gone, checkpoint_id="x")
    for route in (
        "GET /threads/{thread_id}/runs/{run_id}",
        "DELETE /threads/{thread_id}/runs/{run_id}",
        "GET /threads/{thread_id}/runs/{run_id}/join",
        "GET /threads/{thread_id}/runs/{run_id}/stream",
        "POST /threads/{thread_id}/runs/{run_id}/cancel",
    ):
        api.error(route, 404, thread_id=tid, run_id=NO_SUCH)

    api.error("POST /threads", 422, {"thread_id": "not-a-uuid"})
    api.error("POST /threads", 422, {"unknown": 1})
    assert "JSON" in api.error("POST /threads", 422, raw=b"{")
    api.error("POST /threads/search", 422, {"status": "sleeping"})
    api.error("POST /threads/count", 422, {"status": "sleeping"})
    api.error("PATCH /threads/{thread_id}", 422, {"values": {}}, thread_id=tid)
    api.error("GET /threads/{thread_id}/runs", 422, query="limit=ten", thread_id=tid)
    api.error("POST /threads/{thread_id}/history", 422, {"limit": 0}, thread_id=tid)
    api.error("POST /threads/{thread_id}/state", 422, {"values": {}, "as_node": "nowhere"}, thread_id=tid)
    api.error("POST /threads/{thread_id}/runs", 422, {**ask, "unknown": 1}, thread_id=tid)
    api.error("POST /threads/{thread_id}/runs/wait", 422, {**ask, "multitask_strategy": "sometimes"}, thread_id=tid)
    api.error("POST /threads/{thread_id}/runs", 422, ask, thread_id="not-a-uuid")
    run_routes = (("POST /threads/{thread_id}/runs/stream", {"thread_id": tid}), ("POST /runs/stream", {}), ("POST /runs/wait", {}))
    for route, params in run_routes:
        detail = api.error(route, 422, {**ask, "stream_mode": ["values", "events"]}, **params)
        assert "events" in detail and "asyncio" in detail and "messages-tuple" in detail  # why, and what to ask for instead
    api.call("DELETE /threads/{thread_id}", 204, thread_id=tid)


def test_every_response_of_every_served_route_is_as_the_schema_says(app: Flask, spec: Spec) -> None:
    """The walk: all served routes, their successes and refusals; then coverage, and no deviation listed in vain."""
    api = Api(app.test_client(), spec)
    walk_meta_and_assistants(api)
    gone = walk_threads(api)
    walk_runs(api, app)
    walk_stateless(api)
    walk_refusals(api, gone)

    unexercised = spec.routes() - api.served - set(NOT_SERVED)
    assert not unexercised, f"routes of the schema neither exercised nor listed in NOT_SERVED: {sorted(unexercised)}"
    assert not api.served & set(NOT_SERVED), f"served after all: {sorted(api.served & set(NOT_SERVED))}"
    unused = [(i, route) for i, d in enumerate(DEVIATIONS) for route in d.routes if (i, route) not in spec.used]
    assert not unused, f"DEVIATIONS that no response needed (remove or narrow them): {unused}"


def test_routes_not_served_answer_404_or_405_with_a_detail(app: Flask, spec: Spec) -> None:
    client = app.test_client()
    tid = client.post(f"{BASE}/threads", json={}).get_json()["thread_id"]
    assert set(NOT_SERVED) <= spec.routes(), "NOT_SERVED names a route the schema does not have"
    for route in [*NOT_SERVED, "GET /threads", "PUT /threads/{thread_id}"]:
        method, template = route.split(" ", 1)
        url = BASE + re.sub(r"\{(\w+)\}", lambda m: tid if m.group(1) == "thread_id" else "x", template)
        response = client.open(url, method=method, json={} if method in ("POST", "PUT", "PATCH") else None)
        assert response.status_code in (404, 405), f"{route}: {response.status_code} {response.get_data()[:200]!r}"
        problems = spec.errors(route, ref("/components/schemas/ErrorResponse"), response.get_json(), str(response.status_code))
        assert not problems, problems
        detail = response.get_json()["detail"]
        assert ("not served here" in detail) if response.status_code == 404 else (f"{method} is not allowed here; use " in detail), detail


def test_the_validator_rejects_broken_responses(spec: Spec) -> None:
    """The negative control: what the walk accepts is not everything."""
    thread = {
        "thread_id": NO_SUCH,
        "created_at": "2026-01-01T00:00:00+00:00",
        "updated_at": "2026-01-01T00:00:00+00:00",
        "metadata": {},
        "status": "idle",
        "values": {},
        "interrupts": {},
    }
    run = {
        "run_id": NO_SUCH,
        "thread_id": NO_SUCH,
        "assistant_id": NO_SUCH,
        "created_at": thread["created_at"],
        "updated_at": thread["created_at"],
        "status": "success",
        "metadata": {},
        "kwargs": {},
        "multitask_strategy": "reject",
    }

    def problems(route: str, status: int, body: Any) -> list[str]:
        return spec.response_problems(route, status, "application/json", json.dumps(body).encode())

    assert problems("GET /threads/{thread_id}", 200, thread) == []  # the control's control: valid as built
    assert problems("GET /threads/{thread_id}/runs/{run_id}", 200, run) == []
    broken = {k: v for k, v in thread.items() if k != "thread_id"}
    assert any("'thread_id' is a required property" in p for p in problems("GET /threads/{thread_id}", 200, broken))
    run_route = "GET /threads/{thread_id}/runs/{run_id}"
    assert any("'exploded' is not one of" in p for p in problems(run_route, 200, {**run, "status": "exploded"}))
    assert any("is not a 'uuid'" in p for p in problems(run_route, 200, {**run, "run_id": "r1"}))
    assert any("is not a 'date-time'" in p for p in problems("POST /threads", 200, {**thread, "created_at": "yesterday"}))
    assert problems("GET /threads/{thread_id}", 404, {"error": "not found"})  # an error without detail
    assert problems("GET /threads/{thread_id}", 204, None)  # a status the route neither declares nor is excused for
    assert problems("GET /threads/{thread_id}", 200, [thread])
    # The deviations are narrow: null where listed, on the routes listed, and nothing else.
    assert problems("GET /threads/{thread_id}", 200, {**thread, "values": None}) == []
    assert problems("GET /threads/{thread_id}", 200, {**thread, "values": "text"})  # not null: not excused
    assert problems("GET /threads/{thread_id}", 200, {**thread, "metadata": None})  # another field: not excused
    assert problems("POST /threads/{thread_id}/copy", 200, thread) == []
    assert problems("POST /threads/{thread_id}/copy", 200, {**thread, "values": None})  # another route: not excused
    stream = decode_sse(b"id: 0\nevent: values\ndata: {}\n\nid: 1\nevent: updates\ndata: 3\n\n")
    found = spec.stream_problems("POST /runs/stream", stream)
    assert len(found) == 3, found  # not metadata first, no end, updates not an object


def missing(why: str) -> None:
    """Under CI a missing or different langgraph-api fails the check; elsewhere it skips, saying why."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(why)
    pytest.skip(why)


def test_the_vendored_schema_is_the_one_langgraph_api_ships() -> None:
    name, version = SCHEMA_SOURCE
    try:
        installed = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        missing(f"{name} is not installed (pip install -r requirements-dev.txt)")
        return
    if installed.version != version:
        missing(f"{name} {installed.version} installed; the vendored schema is {version}'s")
        return
    shipped = Path(str(installed.locate_file("openapi.json")))
    assert shipped.read_bytes() == SCHEMA_FILE.read_bytes()


# -- once server bugs, each found by this file ----------------------------------------------------------


def test_a_run_the_graph_cannot_take_leaves_its_thread_readable(app: Flask, spec: Spec) -> None:
    api = Api(app.test_client(), spec)
    tid = api.call("POST /threads", 200, {})["thread_id"]
    route, ask = "POST /threads/{thread_id}/runs/wait", {"assistant_id": "agent", "input": {"messages": 5}}
    assert not spec.request_problems(route, ask)
    response = api.client.post(f"{BASE}/threads/{tid}/runs/wait", json=ask)
    assert not spec.response_problems(route, response.status_code, response.mimetype, response.get_data())
    if response.status_code == 422:
        return  # refusing such input before the run is a fix too
    assert response.status_code == 200 and "__error__" in response.get_json()
    assert api.call("GET /threads/{thread_id}", 200, thread_id=tid)["status"] == "error"
    api.call("GET /threads/{thread_id}/state", 200, thread_id=tid)


def test_a_405_names_the_allowed_methods_in_allow(app: Flask) -> None:
    response = app.test_client().open(f"{BASE}/threads", method="GET")
    assert response.status_code == 405
    assert response.headers.get("Allow") == "POST"
