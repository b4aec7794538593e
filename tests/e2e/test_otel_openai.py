"""Issue 27 end to end: the official OpenAI instrumentation's span is in the stream's trace, under real gunicorn gevent workers.

The service (``wsgi:app``, real gunicorn, 2 gevent workers) streams from the repo's local
OpenAI-protocol server with the real ``ChatOpenAI`` (``WEBAPP_PROVIDER=openai``) and exports its
spans over OTLP/HTTP to the tests' ``OTLPReceiver``. ``WEBAPP_OTEL=true`` and
``opentelemetry-instrumentation-openai-v2`` installed: the service switches that instrumentation on
(webapp/observability.py), so each request to the provider is a ``chat upstream-model`` client span
of the official instrumentation's, beside uncut's own ``chat upstream-model`` span.

The producer runs in a greenlet of its own, which starts with no context: the instrumentation's span
lands in the stream's trace only because uncut makes the stream's span current in it. Three
streams at once, so that greenlets of one worker interleave: each stream's trace holds exactly one
call of the official instrumentation, under that stream's own ``stream sse`` span.

The negative control (no ``producing()``: the call's span is a root in a trace of its own) and the
same nesting under gevent in one process are in tests/app/test_otel_openai.py.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import httpx
import pytest

pytest.importorskip("opentelemetry.instrumentation.openai_v2", reason="pip install -r requirements-dev.txt")

from tests.conftest import openai_env  # noqa: E402
from tests.e2e.test_otel import ancestors, gunicorn_with, span_of  # noqa: E402 - also skips without the OTLP exporter
from tests.support.clients import StreamRecord, read_stream  # noqa: E402
from tests.support.openai_upstream import OpenAIUpstream, Script, answer_text  # noqa: E402
from tests.support.otlp_receiver import OTLPReceiver, ReceivedSpan  # noqa: E402
from tests.support.servers import GunicornServer  # noqa: E402

pytestmark = pytest.mark.e2e

MODEL = "upstream-model"
SERVICE = "uncut-e2e-otel-openai"
# The official instrumentation's tracer: its own on the legacy semantic conventions' path, opentelemetry-util-genai's
# handler on the latest (which opentelemetry-util-genai 1.1b0 always takes).
OPENAI_SCOPES = ("opentelemetry.instrumentation.openai_v2", "opentelemetry.util.genai.handler")
STREAMS = 3
TOKENS = 12


@pytest.fixture(scope="module")
def served(upstream_server: OpenAIUpstream, artifacts: Path) -> Iterator[tuple[GunicornServer, OTLPReceiver]]:
    with OTLPReceiver() as receiver:
        env = openai_env(
            upstream_server,
            WEBAPP_OTEL="true",
            WEBAPP_METRICS="prometheus",
            OTEL_SERVICE_NAME=SERVICE,
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_BSP_SCHEDULE_DELAY="100",
        )
        server = gunicorn_with(artifacts, env, "otel-openai")
        try:
            server.start(60)
            yield server, receiver
            assert not receiver.errors, receiver.errors
        finally:
            server.stop()


def depth_tree(spans: list[ReceivedSpan]) -> str:
    by_id = {span.span_id: span for span in spans}
    origin = min(span.start_ns for span in spans)

    def depth(span: ReceivedSpan) -> int:
        return 0 if span.parent_span_id not in by_id else 1 + depth(by_id[span.parent_span_id])

    return "\n".join(
        f"{'  ' * depth(span)}{span.name} [{span.scope}] {span.kind} +{(span.start_ns - origin) / 1e6:.1f} ms, "
        f"{span.duration_s * 1000:.1f} ms, parent {span.parent_span_id}"
        for span in sorted(spans, key=lambda span: span.start_ns)
    )


def test_the_official_openai_span_is_in_each_streams_trace_under_gevent(
    served: tuple[GunicornServer, OTLPReceiver], upstream: OpenAIUpstream
) -> None:
    server, receiver = served
    health = httpx.get(server.url + "/healthz", timeout=10).json()
    assert health["worker"] == "gevent" and health["provider"] == "openai", health
    upstream.script = Script(tokens=TOKENS, ttft=0.1, interval=0.03)

    def chat(index: int) -> StreamRecord:
        return read_stream("POST", server.url + "/api/chat/events", json={"message": f"hello {index}"}, timeout=30)

    with ThreadPoolExecutor(STREAMS) as pool:  # at once: the streams' greenlets interleave
        records = list(pool.map(chat, range(STREAMS)))
    assert len(upstream.wait_for_requests(STREAMS, timeout=10)) == STREAMS
    stream_ids = []
    for record in records:
        assert record.kinds[-1] == "end" and record.text == answer_text(TOKENS), record.kinds
        (start,) = record.of_kind("start")
        stream_ids.append(str(start.json()["stream_id"]))
    assert len(set(stream_ids)) == STREAMS

    for stream_id in stream_ids:
        stream = span_of(receiver, "stream sse", stream_id, timeout=10)

        def calls_in_trace(trace_id: str = stream.trace_id) -> list[ReceivedSpan] | None:
            found = [span for span in receiver.trace(trace_id) if span.scope in OPENAI_SCOPES]
            ours = [span for span in receiver.trace(trace_id) if span.scope == "uncut" and span.name == f"chat {MODEL}"]
            return found if found and ours else None

        (call,) = receiver.wait_for(calls_in_trace, 10, f"the official instrumentation's span in {stream_id}'s trace")
        in_trace = receiver.trace(stream.trace_id)
        print(f"{stream_id}:\n{depth_tree(in_trace)}")
        assert stream.parent_span_id is None and stream.resource["service.name"] == SERVICE
        chain = ancestors(receiver, call)
        assert stream in chain, [span.name for span in chain]
        assert call.name == f"chat {MODEL}" and call.kind == "CLIENT", call
        assert call.attributes["gen_ai.provider.name"] == "openai" and call.attributes["gen_ai.request.model"] == MODEL
        assert stream.start_ns <= call.start_ns and call.end_ns <= stream.end_ns
        (ours,) = [span for span in in_trace if span.scope == "uncut" and span.name == f"chat {MODEL}"]
        assert stream in ancestors(receiver, ours), "uncut's own model span stays on"
