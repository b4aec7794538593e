"""Issue 27: the official OpenAI instrumentation's span is a child of the stream's span, because the producer runs in it.

``uncut.otel`` makes each response's span the current context inside the producer's greenlet
(``OtelTrace.producing()``), which is a greenlet (or, without gevent, a thread) of its own and so
starts with no context at all. The proof that the context crosses is an instrumentation uncut does
not know about: ``opentelemetry-instrumentation-openai-v2``'s ``OpenAIInstrumentor`` wraps the openai
client's ``chat.completions.create`` and parents its ``chat {model}`` client span on whatever is
current when the call is made.

The parts are real: the real ``ChatOpenAI`` and openai client stream from the repo's local
OpenAI-protocol server (tests/support/openai_upstream.py) over a loopback socket, and the spans go
to the SDK's in-memory exporter. ``uncut.otel.install(..., langchain_spans=False)`` leaves the model
call to the official instrumentation, so the trace holds two spans: ``stream sse`` and, under it,
the instrumentation's ``chat upstream-model``.

Run twice: in this process (the producer is a thread) and in a child process monkey-patched by
gevent as gunicorn's gevent worker is (the producer is a greenlet).

NEGATIVE CONTROL: with ``producing()`` replaced by a ``nullcontext`` the same call's span is a root
of a trace of its own, not in the stream's trace. tests/e2e/test_otel_openai.py shows the same
nesting through the service under real gunicorn gevent workers.

The service's side: its openai client (uncut.upstream_client's ``StreamingCompletions``) streams
through the instrumentation, which answers its raw-response call with a stream of its own (the
control shows the cast it makes otherwise failing there), and webapp/observability.py switches the
instrumentation on when it is installed, unless ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` names it.
Each test leaves the instrumentation and uncut.otel off.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from contextlib import nullcontext
from typing import Any

import pytest

pytest.importorskip("opentelemetry.instrumentation.openai_v2", reason="pip install -r requirements-dev.txt")

from langchain_openai import ChatOpenAI  # noqa: E402
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from tests.support.openai_upstream import OpenAIUpstream, Script  # noqa: E402
from tests.support.servers import ROOT  # noqa: E402
from uncut import Streams, otel  # noqa: E402
from uncut.upstream_client import ReusableStream, StreamingCompletions  # noqa: E402
from webapp import observability  # noqa: E402

MODEL = "upstream-model"
# The instrumentation's tracer: its own on the legacy semantic conventions' path, opentelemetry-util-genai's handler on
# the latest (which opentelemetry-util-genai 1.1b0 always takes).
OPENAI_SCOPES = ("opentelemetry.instrumentation.openai_v2", "opentelemetry.util.genai.handler")
TOKENS = 5
INTERVAL_S = 0.02


def stream_spans(base_url: str, *, service_client: bool = False) -> tuple[list[str], list[dict[str, Any]]]:
    """One stream from the upstream, read to its end, with the two instrumentations on: its event kinds, and the spans.

    ``service_client``: through uncut.upstream_client's ``StreamingCompletions``, as the service's openai provider streams.
    """
    exporter = InMemorySpanExporter()
    provider = TracerProvider()  # its own provider: the process-wide one is left alone
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = OpenAIInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:  # by someone else (a create_app with WEBAPP_OTEL): to this provider now
        instrumentor.uninstrument()
    instrumentor.instrument(tracer_provider=provider)
    otel.install(provider, metrics=False, langchain_spans=False)
    try:
        model = ChatOpenAI(base_url=base_url, api_key="x", model=MODEL, streaming=True, max_retries=0, timeout=10)  # type: ignore[arg-type]
        if service_client:
            model.client = StreamingCompletions(model.root_client.chat.completions)
        relay = Streams().stream(model, "hi")
        kinds: list[str] = []

        def write(event: Any) -> bytes:
            kinds.append(event.kind)
            return b""

        Streams.collect(relay, write)
    finally:
        otel.uninstall()
        instrumentor.uninstrument()
    return kinds, [_plain(span) for span in exporter.get_finished_spans()]


def _plain(span: Any) -> dict[str, Any]:
    """A finished span as JSON-able values (the gevent child prints them)."""
    return {
        "name": span.name,
        "scope": span.instrumentation_scope.name,
        "kind": span.kind.name,
        "trace_id": f"{span.context.trace_id:032x}",
        "span_id": f"{span.context.span_id:016x}",
        "parent_id": f"{span.parent.span_id:016x}" if span.parent is not None else None,
        "parent_trace_id": f"{span.parent.trace_id:032x}" if span.parent is not None else None,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "attributes": {key: value if isinstance(value, (str, int, float, bool)) else list(value) for key, value in span.attributes.items()},
    }


def the_two(spans: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stream's span and the instrumentation's, each the only one of its kind."""
    streams = [span for span in spans if span["name"] == "stream sse" and span["scope"] == "uncut"]
    calls = [span for span in spans if span["scope"] in OPENAI_SCOPES]
    assert len(streams) == 1 and len(calls) == 1, [(span["scope"], span["name"]) for span in spans]
    assert len(spans) == 2, "langchain_spans=False: no model span of uncut's own"
    return streams[0], calls[0]


def tree(spans: list[dict[str, Any]]) -> str:
    by_id = {span["span_id"]: span for span in spans}

    def depth(span: dict[str, Any]) -> int:
        return 0 if span["parent_id"] not in by_id else 1 + depth(by_id[span["parent_id"]])

    origin = min(span["start_ns"] for span in spans)
    return "\n".join(
        f"{'  ' * depth(span)}{span['name']} [{span['scope']}] {span['kind']} +{(span['start_ns'] - origin) / 1e6:.1f} ms, "
        f"{(span['end_ns'] - span['start_ns']) / 1e6:.1f} ms, trace {span['trace_id'][:8]}, parent {span['parent_id']}"
        for span in sorted(spans, key=lambda span: span["start_ns"])
    )


def assert_nested(kinds: list[str], spans: list[dict[str, Any]]) -> None:
    assert kinds == ["start"] + ["token"] * TOKENS + ["end"], kinds
    stream, call = the_two(spans)
    assert call["name"] == f"chat {MODEL}" and call["kind"] == "CLIENT", call
    attributes = call["attributes"]
    assert attributes["gen_ai.operation.name"] == "chat" and attributes["gen_ai.request.model"] == MODEL, attributes
    assert attributes["gen_ai.provider.name"] == "openai" and attributes["gen_ai.response.model"] == MODEL, attributes
    assert call["trace_id"] == stream["trace_id"], "the model call is in the stream's trace"
    assert call["parent_id"] == stream["span_id"], "its parent is the stream's span"
    assert stream["parent_id"] is None, "the stream's span is the trace's root"
    assert stream["start_ns"] <= call["start_ns"] and call["end_ns"] <= stream["end_ns"], "it ends before the stream's span"
    assert stream["attributes"]["uncut.outcome"] == "completed" and stream["attributes"]["uncut.tokens"] == TOKENS


def assert_not_nested(kinds: list[str], spans: list[dict[str, Any]]) -> None:
    assert kinds[-1] == "end", kinds
    stream, call = the_two(spans)
    assert call["parent_id"] is None, "without the stream's context the call's span is a root"
    assert call["trace_id"] != stream["trace_id"], "in a trace of its own"


@pytest.fixture
def upstream_url(upstream: OpenAIUpstream) -> str:
    upstream.script = Script(tokens=TOKENS, interval=INTERVAL_S)
    return upstream.base_url


# -- in this process: the producer is a thread --------------------------------------------------


def test_the_openai_instrumentations_span_is_a_child_of_the_streams_span(upstream_url: str) -> None:
    kinds, spans = stream_spans(upstream_url)
    print(f"threads, producing() on:\n{tree(spans)}")
    assert_nested(kinds, spans)


def test_negative_control_without_producing_the_call_is_in_a_trace_of_its_own(upstream_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(otel.OtelTrace, "producing", lambda self: nullcontext())
    kinds, spans = stream_spans(upstream_url)
    print(f"threads, producing() off:\n{tree(spans)}")
    assert_not_nested(kinds, spans)


# -- the service's openai client -------------------------------------------------------------------


def test_the_services_streaming_client_streams_through_the_instrumentation(upstream_url: str) -> None:
    """The instrumentation answers ``with_raw_response.create(stream=True)`` with its wrapper of the SDK's stream,
    whose ``parse`` takes no ``to``: StreamingCompletions reads that stream as it is."""
    kinds, spans = stream_spans(upstream_url, service_client=True)
    print(f"StreamingCompletions, producing() on:\n{tree(spans)}")
    assert_nested(kinds, spans)


def test_control_uninstrumented_the_service_client_keeps_its_own_stream_and_instrumented_the_cast_fails(upstream_url: str) -> None:
    """Without the instrumentation StreamingCompletions casts the SDK's raw response to its ReusableStream (the fallback
    does not fire); under it the raw-response call answers with the instrumentation's wrapper, whose ``parse(to=...)`` fails.
    """
    import openai
    from openai._legacy_response import LegacyAPIResponse

    instrumentor = OpenAIInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    messages: Any = [{"role": "user", "content": "hi"}]
    client = openai.OpenAI(base_url=upstream_url, api_key="x", max_retries=0, timeout=10)
    assert isinstance(client.chat.completions.with_raw_response.create(model=MODEL, messages=messages), LegacyAPIResponse)
    with StreamingCompletions(client.chat.completions).create(model=MODEL, messages=messages, stream=True) as stream:
        assert isinstance(stream, ReusableStream) and len(list(stream)) >= TOKENS
    instrumentor.instrument(tracer_provider=TracerProvider())
    try:
        # A new client: a resource's with_raw_response is cached, bound to the create it found first.
        client = openai.OpenAI(base_url=upstream_url, api_key="x", max_retries=0, timeout=10)
        wrapped: Any = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages, stream=True)
        try:
            assert not isinstance(wrapped, LegacyAPIResponse)
            with pytest.raises(TypeError, match="unexpected keyword argument 'to'"):
                wrapped.parse(to=ReusableStream[object])
        finally:
            wrapped.close()
    finally:
        instrumentor.uninstrument()


def test_the_service_switches_the_instrumentation_on_unless_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    """webapp/observability.py: installed means on (as under opentelemetry-instrument); the standard variable turns it off."""
    instrumentor = OpenAIInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    provider = TracerProvider()
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "flask, openai")
    observability._instrument_openai(provider)
    assert not instrumentor.is_instrumented_by_opentelemetry
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "")
    try:
        observability._instrument_openai(provider)
        assert instrumentor.is_instrumented_by_opentelemetry
    finally:
        observability._uninstrument_openai()
    assert not instrumentor.is_instrumented_by_opentelemetry
    # Switched on by someone else (opentelemetry-instrument): the service leaves it, on.
    instrumentor.instrument(tracer_provider=provider)
    try:
        observability._instrument_openai(provider)
        observability._uninstrument_openai()
        assert instrumentor.is_instrumented_by_opentelemetry
    finally:
        instrumentor.uninstrument()


# -- under gevent: the producer is a greenlet -----------------------------------------------------

CHILD = textwrap.dedent("""
    import json, sys
    from gevent import monkey; monkey.patch_all()
    from contextlib import nullcontext
    from uncut import otel
    from uncut.concurrency import under_gevent
    from tests.app.test_otel_openai import stream_spans

    assert under_gevent()
    results = {}
    for mode in ("on", "off"):
        if mode == "off":  # the negative control
            otel.OtelTrace.producing = lambda self: nullcontext()
        results[mode] = stream_spans(sys.argv[1])
    print(json.dumps(results))
""")


def test_under_gevent_the_call_is_a_child_only_with_producing(upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=TOKENS, interval=INTERVAL_S)
    done = subprocess.run([sys.executable, "-c", CHILD, upstream.base_url], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    (on_kinds, on_spans), (off_kinds, off_spans) = results["on"], results["off"]
    print(f"gevent, producing() on:\n{tree(on_spans)}\ngevent, producing() off:\n{tree(off_spans)}")
    assert_nested(on_kinds, on_spans)
    assert_not_nested(off_kinds, off_spans)
    assert len(upstream.wait_for_requests(2, timeout=5)) == 2
