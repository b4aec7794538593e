"""The public API, pinned: each public module's exact ``__all__``, every other module marked internal,
and the service, the examples and the docs importing from the public face only (as httpx's
``test_exported_members`` does).

Changing a public name is a decision: update ``PUBLIC_API`` here, the package docstring
(uncut/__init__.py) and, for a rename, keep the old name working for a release.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from dataclasses import fields
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "uncut"

# Every public module and exactly what it exports, sorted.
PUBLIC_API: dict[str, list[str]] = {
    "uncut": [
        "CONTENT_TYPES",
        "EventLogStore",
        "HEADERS",
        "MemoryStore",
        "OptionError",
        "ScriptedChatModel",
        "StoreUnavailable",
        "StreamArgs",
        "StreamBody",
        "StreamNotFound",
        "StreamOptions",
        "StreamRefused",
        "Streams",
        "ThreadError",
        "UncutError",
        "__version__",
    ],
    "uncut.flask": [
        "CONFIG_PREFIX",
        "EXTENSION_KEY",
        "StreamArgs",
        "StreamNotFound",
        "StreamRefused",
        "Streaming",
        "agent_server_blueprint",
        "answer_response",
        "cancel_stream",
        "current_streams",
        "openai_response",
        "refusal_response",
        "responses_response",
        "resume_response",
        "resume_ui_message_response",
        "sse_response",
        "start_stream",
        "stream_status",
        "text_response",
        "thread_response",
        "ui_message_response",
        "ui_thread_response",
    ],
    "uncut.django": [
        "StreamArgs",
        "StreamNotFound",
        "StreamRefused",
        "agent_server_urls",
        "answer_response",
        "cancel_stream",
        "openai_response",
        "refusal_response",
        "responses_response",
        "resume_response",
        "resume_ui_message_response",
        "sse_response",
        "start_stream",
        "stream_status",
        "streams",
        "text_response",
        "thread_response",
        "ui_message_response",
        "ui_thread_response",
    ],
    "uncut.wsgi": [
        "StreamArgs",
        "StreamNotFound",
        "StreamRefused",
        "agent_server_app",
        "answer_response",
        "cancel_stream",
        "default_streams",
        "openai_response",
        "refusal_response",
        "responses_response",
        "resume_response",
        "resume_ui_message_response",
        "sse_response",
        "start_stream",
        "stream_status",
        "text_response",
        "thread_response",
        "ui_message_response",
        "ui_thread_response",
    ],
    "uncut.agent_server": ["AgentServer", "ApiRequest", "MemoryRecords", "ProtocolError", "Records", "Reply", "SqlRecords"],
    "uncut.errors": [
        "ABANDONED",
        "AsyncCallbackError",
        "BETWEEN_CHUNKS_STALL",
        "CANCELLED",
        "CLIENT_DISCONNECTED",
        "CLIENT_LIMIT",
        "ERROR_TYPES",
        "FIRST_CHUNK_STALL",
        "Interrupted",
        "InvalidResume",
        "InvalidThread",
        "InvalidUIRequest",
        "LogClosedError",
        "NothingToResume",
        "OUTCOMES",
        "OUTCOME_OF_ERROR",
        "OVERLOADED",
        "OptionError",
        "PRODUCER_LOST",
        "ProtocolError",
        "RATE_LIMITED",
        "READER_LIMIT",
        "SERVER_ERROR",
        "SERVER_SHUTDOWN",
        "STORE_UNAVAILABLE",
        "ScriptedModelError",
        "StoreUnavailable",
        "StreamAborted",
        "StreamNotFound",
        "StreamRefused",
        "THREAD_LEASE_LOST",
        "TIMEOUT",
        "TOO_LARGE",
        "ThreadBusy",
        "ThreadError",
        "UPSTREAM_ERROR",
        "UPSTREAM_REJECTED",
        "UPSTREAM_TIMEOUT",
        "UPSTREAM_UNAVAILABLE",
        "UncutError",
        "error",
        "error_body",
    ],
    "uncut.options": ["DISCONNECT_POLICIES", "OptionError", "RANGES", "Range", "StreamArgs", "StreamOptions", "parse_bool"],
    "uncut.eventlog": ["MemoryStore", "StoreUnavailable"],
    "uncut.redis_store": ["RedisStore", "masked"],
    "uncut.redis_config": ["RedisTarget", "STORE_RETRY_SECONDS", "masked", "parse_store_url"],
    "uncut.threads": [
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
    ],
    "uncut.ui_request": ["Approval", "InvalidUIRequest", "UIChatRequest", "chat_thread_id", "parse_ui_chat", "valid_chat_id"],
    "uncut.scripted": ["ScriptedChatModel", "ScriptedModelError"],
    "uncut.callbacks": ["AsyncCallbackError", "check_sync_handlers"],
    "uncut.otel": ["OtelTracer", "install", "uninstall"],
    "uncut.telemetry": [
        "NoMetrics",
        "NoTracer",
        "OUTCOMES",
        "StreamMetrics",
        "StreamTrace",
        "StreamTracer",
        "add_metrics",
        "metrics",
        "otel_switch",
        "tracer",
        "tracing",
        "use_metrics",
        "use_tracer",
    ],
    "uncut.prometheus": ["OUTCOMES", "PrometheusMetrics", "exposition", "install", "mark_worker_dead"],
    "uncut.gate": ["ADMITTED_KEY", "AdmissionGate"],
    "uncut.gunicorn": ["GC_THRESHOLDS", "client_socket", "detect_worker", "ssl_imported_before_patching", "tune_gc", "under_gevent"],
    "uncut.upstream_client": ["POOL_SHARDS", "StreamingCompletions", "build_http_client", "sharded_clients"],
    "uncut.doctor": ["Finding", "arguments", "findings_for", "main", "report", "run"],
    "uncut.probe": ["Report", "main", "probe", "verdict"],
}
ADAPTERS = ("uncut.flask", "uncut.django", "uncut.wsgi")
INTERNAL_MARK = "Internal:"


def all_modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def docstring(module: str) -> str:
    parts = module.split(".")
    path = ROOT.joinpath(*parts, "__init__.py") if ROOT.joinpath(*parts).is_dir() else ROOT.joinpath(*parts[:-1], parts[-1] + ".py")
    return ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""


@pytest.mark.parametrize("module", sorted(PUBLIC_API))
def test_exported_members(module: str) -> None:
    imported = importlib.import_module(module)
    exported = getattr(imported, "__all__", None)
    assert exported is not None, f"{module} is public but has no __all__"
    assert len(exported) == len(set(exported)), f"{module}.__all__ names a name twice"
    assert sorted(exported) == PUBLIC_API[module], (
        f"{module}.__all__ changed: added {sorted(set(exported) - set(PUBLIC_API[module]))}, "
        f"removed {sorted(set(PUBLIC_API[module]) - set(exported))}; a public name is a decision (see this file's docstring)"
    )
    for name in exported:
        assert hasattr(imported, name), f"{module}.__all__ names {name}, which it does not define"


def test_every_module_is_public_or_says_it_is_internal() -> None:
    unclassified = []
    for module in all_modules():
        internal = docstring(module).startswith(INTERNAL_MARK)
        if module in PUBLIC_API:
            assert not internal, f"{module} is public: its docstring must not start {INTERNAL_MARK!r}"
        elif not internal:
            unclassified.append(module)
    assert not unclassified, (
        f"neither public nor internal: {unclassified}; pin its __all__ in PUBLIC_API (tests/unit/test_public_api.py) "
        f"and list it in uncut/__init__.py's docstring, or start its docstring with {INTERNAL_MARK!r}"
    )


def test_the_package_docstring_lists_every_public_module() -> None:
    listed = set(re.findall(r"``(uncut(?:\.\w+)*)``", docstring("uncut")))
    assert set(PUBLIC_API) - listed == set()


# -- what the service, the examples and the docs import ---------------------------------------------------------------------------


def violations(source: str, where: str = "<source>") -> list[str]:
    """Every import of an internal module, or of a name a public module does not export, in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "uncut" and alias.name not in PUBLIC_API:
                    found.append(f"{where}:{node.lineno}: import {alias.name} (internal module)")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == "uncut":
            if node.module not in PUBLIC_API:
                found.append(f"{where}:{node.lineno}: from {node.module} import ... (internal module)")
                continue
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if alias.name not in PUBLIC_API[node.module] and submodule not in PUBLIC_API:
                    found.append(f"{where}:{node.lineno}: from {node.module} import {alias.name} (not in its __all__)")
    return found


def python_files() -> list[Path]:
    return sorted(p for folder in ("webapp", "examples") for p in (ROOT / folder).rglob("*.py"))


def test_the_service_and_the_examples_import_only_the_public_face() -> None:
    found = [v for path in python_files() for v in violations(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))]
    assert not found, "\n".join(found)


def doc_imports(text: str) -> str:
    """The import lines of a Markdown page's Python code blocks."""
    lines = []
    for block in re.findall(r"```(?:python|py)\n(.*?)```", text, re.DOTALL):
        lines += [line.strip() for line in block.splitlines() if re.match(r"\s*(from uncut[\w.]* import [^(]*$|import uncut)", line)]
    return "\n".join(lines)


def test_the_readme_and_the_library_guide_import_only_the_public_face() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    found = [v for page in pages if page.exists() for v in violations(doc_imports(page.read_text(encoding="utf-8")), page.name)]
    assert not found, "\n".join(found)


def test_the_import_check_catches_an_internal_import() -> None:
    assert violations("from uncut.streams import Streams")
    assert violations("import uncut.relay")
    assert violations("from uncut.flask import _current")
    assert violations("from uncut.ui_threads import chat_thread_id")
    assert not violations("from uncut import Streams, prometheus\nfrom uncut.flask import sse_response\nimport uncut.flask")


# -- the adapters: one set of keywords, the same refusal ------------------------------------------------------------------------------


def test_stream_args_are_the_run_keywords_and_every_option() -> None:
    from uncut.options import RUN_ARGS, StreamArgs, StreamOptions

    assert set(StreamArgs.__annotations__) == set(RUN_ARGS) | {f.name for f in fields(StreamOptions)}


# What only one adapter has: how it finds its app's Streams, and how it mounts the Agent Server.
ADAPTER_ONLY = {
    "uncut.flask": {"CONFIG_PREFIX", "EXTENSION_KEY", "Streaming", "current_streams", "agent_server_blueprint"},
    "uncut.django": {"streams", "agent_server_urls"},
    "uncut.wsgi": {"default_streams", "agent_server_app"},
}
SHARED = sorted(set(PUBLIC_API["uncut.flask"]) - ADAPTER_ONLY["uncut.flask"] - {"StreamArgs", "StreamNotFound", "StreamRefused"})
ADAPTER_OWN = {"uncut.flask": set(), "uncut.django": set(), "uncut.wsgi": {"streams"}}  # WSGI has no app: it is told its Streams


def test_the_adapters_export_the_same_functions() -> None:
    shared = {adapter: set(PUBLIC_API[adapter]) - ADAPTER_ONLY[adapter] for adapter in ADAPTERS}
    assert shared["uncut.flask"] == shared["uncut.django"] == shared["uncut.wsgi"], shared


@pytest.mark.parametrize("name", SHARED)
def test_the_adapters_take_the_same_keywords(name: str) -> None:
    pytest.importorskip("django")
    keywords = {}
    for adapter in ADAPTERS:
        signature = inspect.signature(getattr(importlib.import_module(adapter), name))
        own = {p.name for p in signature.parameters.values() if p.kind is p.KEYWORD_ONLY} - ADAPTER_OWN[adapter]
        rest = [p for p in signature.parameters.values() if p.kind is p.VAR_KEYWORD]
        keywords[adapter] = (sorted(own), [str(p.annotation) for p in rest])
    assert len({repr(v) for v in keywords.values()}) == 1, keywords
    own, rest = keywords["uncut.flask"]
    assert rest in ([], ["Unpack[StreamArgs]"]), rest


def test_every_run_function_of_every_adapter_takes_stream_args() -> None:
    pytest.importorskip("django")
    for adapter in ADAPTERS:
        module = importlib.import_module(adapter)
        for name in module.__all__:
            function = getattr(module, name)
            if (
                not inspect.isfunction(function)
                or "runnable" not in inspect.signature(function).parameters
                and "graph" not in (inspect.signature(function).parameters)
            ):
                continue
            rest = [p for p in inspect.signature(function).parameters.values() if p.kind is p.VAR_KEYWORD]
            assert [str(p.annotation) for p in rest] == ["Unpack[StreamArgs]"], f"{adapter}.{name}"


def test_every_adapter_refuses_with_its_refusal_response() -> None:
    pytest.importorskip("django")
    for adapter in ADAPTERS:
        module = importlib.import_module(adapter)
        assert "refused" in inspect.signature(module.refusal_response).parameters, adapter
