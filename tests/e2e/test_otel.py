"""Issue 27 end to end: the service's OpenTelemetry spans and GenAI metrics, exported over OTLP/HTTP to a real receiver.

Two instances of the service (``wsgi:app`` under real gunicorn, 2 gevent workers each, the embedded
scripted model) share a real Redis stream store and export to one ``OTLPReceiver``, which decodes
the protobuf the SDK's OTLP/HTTP exporters send (``OTEL_EXPORTER_OTLP_ENDPOINT``, spans batched
every 100 ms, metrics every 500 ms). Each instance has its own ``OTEL_SERVICE_NAME``, so the
receiver tells them apart by resource:

- A: ``WEBAPP_OTEL=true``, ``WEBAPP_METRICS=both`` (OTLP metrics and ``/metrics``);
- B: ``WEBAPP_OTEL=true``, ``WEBAPP_METRICS=prometheus``: spans, and no OTLP metrics (the switch's
  negative control; B is also the other instance a resume lands on).

Client times are ``time.time_ns()`` at each chunk's arrival; spans carry the server's
``time.time_ns()``. Same machine, same clock. Heartbeats are off, so a proxy's idle timeout cuts a
silent stream (nginx from conf/, its ``proxy_read_timeout`` cut to 1 s).

The negative control for the span's length (the Flask instrumentation alone ends it before the
first token) is tests/app/test_otel_flask_control.py.
"""

from __future__ import annotations

import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest


def _require_opentelemetry() -> None:
    """The service's OTLP exporter and the receiver's decoder: a failure under CI, a skip elsewhere."""
    try:
        import opentelemetry.exporter.otlp.proto.http  # noqa: F401
        import opentelemetry.proto  # noqa: F401
    except ImportError as missing:
        message = f"{missing.name} is not installed: pip install -r requirements-dev.txt"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message, allow_module_level=True)


_require_opentelemetry()

from tests.support.clients import StreamRecord, read_stream  # noqa: E402
from tests.support.genai_semconv import METRICS as GENAI_METRICS  # noqa: E402
from tests.support.otlp_receiver import OTLPReceiver, ReceivedMetric, ReceivedSpan  # noqa: E402
from tests.support.proxies import Nginx, Variant, require_binary  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402
from tests.support.servers import GunicornServer  # noqa: E402
from uncut.scripted import script_tokens  # noqa: E402

# alone: it compares a server's clock with the client's to 100 ms, and boots four workers, a Redis and an nginx.
pytestmark = [pytest.mark.e2e, pytest.mark.alone]

TTFT_MS = 200
INTERVAL_MS = 20
PROMPT = "Tell me about traces"
FULL_ANSWER = "".join(script_tokens(PROMPT, None))  # 56 tokens: about 1.3 s at these settings
SERVICE_A = "uncut-e2e-otel-a"
SERVICE_B = "uncut-e2e-otel-b"
NEAR_NS = 100_000_000  # 100 ms: how near the span's end must be to the client's last byte
SERVER_METRICS = (
    "gen_ai.server.request.duration",
    "gen_ai.server.time_to_first_token",
    "gen_ai.server.time_per_output_token",
    "gen_ai.client.token.usage",
)


# -- servers -----------------------------------------------------------------------------------


@dataclass
class Stack:
    receiver: OTLPReceiver
    a: GunicornServer  # WEBAPP_METRICS=both
    b: GunicornServer  # WEBAPP_METRICS=prometheus
    redis: RedisServer
    workdir: Path


def service_env(receiver: OTLPReceiver, redis: RedisServer, service_name: str, metrics: str) -> dict[str, str]:
    return {
        "WEBAPP_PROVIDER": "scripted",
        "WEBAPP_SCRIPTED_TTFT_MS": str(TTFT_MS),
        "WEBAPP_SCRIPTED_INTERVAL_MS": str(INTERVAL_MS),
        "WEBAPP_HEARTBEAT_SECONDS": "0",  # so a proxy's idle timeout cuts a silent stream
        "WEBAPP_STREAM_STORE": redis.url,
        "WEBAPP_OTEL": "true",
        "WEBAPP_METRICS": metrics,
        "OTEL_SERVICE_NAME": service_name,
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
    }


def gunicorn_with(artifacts: Path, env: dict[str, str], name: str) -> GunicornServer:
    server = GunicornServer(artifacts, env=env, args=["--workers", "2"], name=name)
    for key in [key for key in server.env if key.startswith("OTEL_") and key not in env]:
        del server.env[key]  # only this test's OTEL_* settings: none from the shell
    return server


@pytest.fixture(scope="module")
def stack(artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("otel")
    with OTLPReceiver() as receiver:
        redis = RedisServer(workdir).start()
        a = gunicorn_with(artifacts, service_env(receiver, redis, SERVICE_A, "both"), "otel-a")
        b = gunicorn_with(artifacts, service_env(receiver, redis, SERVICE_B, "prometheus"), "otel-b")
        try:
            with ThreadPoolExecutor(2) as pool:  # the two boot side by side
                for started in [pool.submit(a.start, 60), pool.submit(b.start, 60)]:
                    started.result()
            yield Stack(receiver, a, b, redis, workdir)
            assert not receiver.errors, receiver.errors  # every export decoded
        finally:
            a.stop()
            b.stop()
            redis.stop()


# -- reading, with the client's clock ---------------------------------------------------------


@dataclass
class Timed:
    record: StreamRecord
    sent_ns: int
    chunk_ns: list[int] = field(default_factory=list)  # time.time_ns() as each chunk arrived
    done_ns: int = 0  # when the read returned (the end, the client's cut, or the proxy's)

    @property
    def first_byte_ns(self) -> int:
        return self.chunk_ns[0]

    @property
    def last_byte_ns(self) -> int:
        return self.chunk_ns[-1]

    @property
    def start(self) -> dict[str, Any]:
        (start,) = self.record.of_kind("start")
        return start.json()  # type: ignore[no-any-return]

    @property
    def stream_id(self) -> str:
        return str(self.start["stream_id"])

    @property
    def last_event_id(self) -> str:
        ids = [event.id for _, event in self.record.events if event.id]
        assert ids, "no event with an id was received"
        return ids[-1]


def timed(method: str, url: str, stop_when: Callable[[StreamRecord], bool] | None = None, **kwargs: Any) -> Timed:
    sent_ns = time.time_ns()
    chunk_ns: list[int] = []

    def observe(record: StreamRecord) -> bool:  # read_stream calls it as each chunk arrives
        now = time.time_ns()
        chunk_ns.extend([now] * (len(record.chunks) - len(chunk_ns)))
        return stop_when(record) if stop_when is not None else False

    record = read_stream(method, url, stop_when=observe, **kwargs)
    return Timed(record, sent_ns, chunk_ns, time.time_ns())


def chat(server: GunicornServer, message: str = PROMPT, **kwargs: Any) -> Timed:
    return timed("POST", server.url + "/api/chat/events", json={"message": message}, **kwargs)


def quick(server: GunicornServer) -> Timed:
    """A short complete stream (the diagnostics route: two tokens, no waits)."""
    got = timed("GET", server.url + "/api/diagnostics/stream?tokens=2&interval_ms=0")
    assert got.record.kinds[-1] == "end", got.record.kinds
    return got


def tokens_at_least(count: int) -> Callable[[StreamRecord], bool]:
    return lambda record: record.kinds.count("token") >= count


# -- finding what arrived -------------------------------------------------------------------------


def span_of(receiver: OTLPReceiver, name: str, stream_id: str, timeout: float = 5.0) -> ReceivedSpan:
    """The one span ``name`` of stream ``stream_id`` (its ``uncut.stream.id``), once it arrived."""

    def found() -> ReceivedSpan | None:
        spans = [s for s in receiver.spans(name) if s.attributes.get("uncut.stream.id") == stream_id]
        assert len(spans) <= 1, spans
        return spans[0] if spans else None

    return receiver.wait_for(found, timeout, f"span {name!r} of {stream_id}")


def ancestors(receiver: OTLPReceiver, span: ReceivedSpan) -> list[ReceivedSpan]:
    """The span's parent, its parent's parent... as far as the receiver has them."""
    by_id = {s.span_id: s for s in receiver.trace(span.trace_id)}
    chain: list[ReceivedSpan] = []
    parent = span.parent_span_id
    while parent is not None and parent in by_id and len(chain) < 50:
        chain.append(by_id[parent])
        parent = by_id[parent].parent_span_id
    return chain


def metrics_from(receiver: OTLPReceiver, service: str, name: str | None = None) -> list[ReceivedMetric]:
    return [m for m in receiver.metrics(name) if m.resource.get("service.name") == service]


def ms(ns: int) -> float:
    return round(ns / 1e6, 1)


# -- the tests -----------------------------------------------------------------------------------


def test_a_streams_span_lasts_as_long_as_the_stream(stack: Stack) -> None:
    got = chat(stack.a)
    assert got.record.kinds[-1] == "end" and got.record.text == FULL_ANSWER
    span = span_of(stack.receiver, "stream sse", got.stream_id)
    figures = {
        "span_end_minus_client_last_byte_ms": ms(span.end_ns - got.last_byte_ns),
        "client_first_byte_minus_span_start_ms": ms(got.first_byte_ns - span.start_ns),
        "span_start_minus_request_sent_ms": ms(span.start_ns - got.sent_ns),
        "span_ms": ms(span.end_ns - span.start_ns),
        "stream_ms": ms(got.last_byte_ns - got.sent_ns),
    }
    print(f"stream span: {figures}")
    assert abs(span.end_ns - got.last_byte_ns) < NEAR_NS, figures
    assert got.sent_ns <= span.start_ns < got.first_byte_ns, figures
    assert span.status_code == "OK" and span.kind == "SERVER", span
    assert span.resource["service.name"] == SERVICE_A
    attributes = span.attributes
    assert attributes["uncut.outcome"] == "completed" and attributes["uncut.surface"] == "sse", attributes
    assert attributes["uncut.tokens"] == got.record.kinds.count("token") == len(script_tokens(PROMPT, None)), attributes
    assert attributes["gen_ai.request.stream"] is True and attributes["gen_ai.operation.name"] == "chat", attributes
    assert attributes["gen_ai.request.model"] == "scripted" and attributes["gen_ai.provider.name"] == "scripted", attributes
    assert TTFT_MS / 1000 <= attributes["gen_ai.response.time_to_first_chunk"] < TTFT_MS / 1000 + 0.3, attributes
    assert "uncut.max_gap" in attributes and attributes["uncut.heartbeats"] == 0, attributes
    # The client can find its trace: the start event carries the span's traceparent.
    assert got.start["traceparent"].split("-")[:3] == ["00", span.trace_id, span.span_id]


def test_a_traceparent_header_becomes_the_parent(stack: Stack) -> None:
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    got = chat(stack.a, headers={"traceparent": f"00-{trace_id}-{parent_id}-01"})
    assert got.record.kinds[-1] == "end"
    span = span_of(stack.receiver, "stream sse", got.stream_id)
    assert (span.trace_id, span.parent_span_id) == (trace_id, parent_id), span
    assert span.kind == "SERVER" and span.status_code == "OK"
    assert got.start["traceparent"].split("-")[:3] == ["00", trace_id, span.span_id]
    # Negative control: without the header the stream's span is a root of a trace of its own.
    root = span_of(stack.receiver, "stream sse", quick(stack.a).stream_id)
    assert root.parent_span_id is None and root.trace_id != trace_id


def test_a_tool_call_is_a_child_span_of_the_streams_span(stack: Stack) -> None:
    got = timed("POST", stack.a.url + "/api/agent/events", json={"message": "calculate 6*7"})
    assert got.record.kinds[-1] == "end", got.record.kinds
    (result,) = got.record.of_kind("tool_result")
    assert result.json()["name"] == "calculate" and result.json()["content"] == "42"
    span = span_of(stack.receiver, "stream sse", got.stream_id)
    receiver = stack.receiver

    def tool_and_models() -> tuple[ReceivedSpan, list[ReceivedSpan]] | None:
        in_trace = receiver.trace(span.trace_id)
        tools = [s for s in in_trace if s.name == "execute_tool calculate"]
        models = [s for s in in_trace if s.name.startswith("chat ")]
        return (tools[0], models) if len(tools) == 1 and len(models) == 2 else None

    tool, models = receiver.wait_for(tool_and_models, 5, "the tool's span and two model calls' spans")
    chain = ancestors(receiver, tool)
    print(f"execute_tool calculate -> {' -> '.join(s.name for s in chain)}; {tool.duration_s * 1000:.1f} ms")
    assert span in chain, [s.name for s in chain]
    assert chain[-1] == span, "the stream's span is the trace's root"
    assert tool.attributes["gen_ai.tool.name"] == "calculate" and tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert tool.status_code != "ERROR"
    assert span.start_ns <= tool.start_ns and tool.end_ns <= span.end_ns
    for model in models:  # one call asks for the tool, one answers from its result
        assert span in ancestors(receiver, model), model
        assert model.kind == "CLIENT" and model.attributes["gen_ai.request.model"] == "scripted"
    first, second = sorted(models, key=lambda s: s.start_ns)
    assert first.end_ns <= tool.start_ns and tool.end_ns <= second.start_ns, "model, tool, model: in that order"


def test_a_cut_at_the_proxy_ends_the_span_with_an_error(stack: Stack) -> None:
    require_binary("nginx", "nginx")
    proxy = Nginx(stack.workdir, stack.a.port, Variant(idle_timeout_seconds=1)).start()
    try:
        # Two tokens, then 3 s of silence: nginx's 1 s idle timeout cuts it.
        got = timed("GET", proxy.url + "/api/diagnostics/stream?tokens=4&interval_ms=20&pause_s=3&pause_at=2", timeout=10)
    finally:
        proxy.stop()
    assert "end" not in got.record.kinds and got.record.kinds.count("token") == 2, got.record.kinds
    span = span_of(stack.receiver, "stream sse", got.stream_id)
    figures = {
        "span_end_minus_client_saw_cut_ms": ms(span.end_ns - got.done_ns),
        "span_end_minus_last_byte_ms": ms(span.end_ns - got.last_byte_ns),
        "span_ms": ms(span.end_ns - span.start_ns),
    }
    print(f"cut stream span: {figures}; outcome {span.attributes.get('uncut.outcome')}; status {span.status_message!r}")
    assert span.status_code == "ERROR", span
    assert span.attributes["uncut.outcome"] != "completed" and span.attributes["error.type"] == span.attributes["uncut.outcome"]
    assert span.attributes["uncut.tokens"] == 2
    assert 0.9e9 <= span.end_ns - got.last_byte_ns < 2.5e9, f"it ended at the proxy's cut, not the pause's end: {figures}"
    assert abs(span.end_ns - got.done_ns) < 250_000_000, f"near the cut the client saw: {figures}"


def test_a_resume_on_the_other_instance_is_its_own_span_linked_to_the_first(stack: Stack) -> None:
    first = chat(stack.a, stop_when=tokens_at_least(5))  # the client leaves after five tokens
    assert first.record.terminal is None
    rest = timed("GET", stack.b.url + "/api/chat/events", headers={"Last-Event-ID": first.last_event_id})
    assert rest.record.kinds[-1] == "end"
    assert first.record.text + rest.record.text == FULL_ANSWER, "the resumed text completes the answer"

    origin = span_of(stack.receiver, "stream sse", first.stream_id)
    resumed = span_of(stack.receiver, "resume sse", first.stream_id)
    print(
        f"stream span {origin.span_id} on {origin.resource['service.name']} ({origin.attributes['uncut.outcome']}), "
        f"resume span {resumed.span_id} on {resumed.resource['service.name']} links {[link.span_id for link in resumed.links]}"
    )
    assert origin.resource["service.name"] == SERVICE_A and resumed.resource["service.name"] == SERVICE_B
    assert resumed.span_id != origin.span_id
    (link,) = resumed.links
    assert (link.trace_id, link.span_id) == (origin.trace_id, origin.span_id)
    assert link.attributes.get("uncut.link") == "stream"
    assert resumed.trace_id == origin.trace_id, "a resume with no trace of its own joins the stream's trace"
    assert resumed.status_code == "OK" and resumed.attributes["uncut.outcome"] == "completed"
    assert resumed.attributes["uncut.response"] == "resume"
    assert origin.status_code == "ERROR" and origin.attributes["uncut.outcome"] == "client_disconnected"
    assert abs(resumed.end_ns - rest.last_byte_ns) < NEAR_NS, ms(resumed.end_ns - rest.last_byte_ns)


def test_the_genai_metrics_arrive_over_otlp_and_prometheus_still_serves(stack: Stack) -> None:
    assert chat(stack.a, "hi").record.kinds[-1] == "end"
    b_stream = quick(stack.b)
    receiver = stack.receiver

    def completed(records: list[ReceivedMetric]) -> bool:
        return any(
            point.attributes.get("uncut.outcome") == "completed" and point.attributes.get("gen_ai.request.model") == "scripted"
            for metric in records
            for point in metric.points
        )

    def every_metric() -> dict[str, list[ReceivedMetric]] | None:
        # Each of A's two workers exports its own records (the same resource): all of them, not the latest. Once one
        # holds the completed chat stream's duration, the same export holds its time to first token and per token.
        found = {name: metrics_from(receiver, SERVICE_A, name) for name in SERVER_METRICS}
        return found if all(found.values()) and completed(found["gen_ai.server.request.duration"]) else None

    arrived = receiver.wait_for(every_metric, 10, "the four GenAI metrics from A, with the completed stream's")
    for name, records in arrived.items():
        spec = GENAI_METRICS[name]
        shapes = {(metric.unit, metric.kind, metric.scope) for metric in records}
        counts = max(sum(point.count or 0 for point in metric.points) for metric in records)
        print(f"{name}: {shapes}, {len(records)} export(s), up to {counts} recorded in one")
        assert shapes == {(spec.unit, spec.instrument, "uncut")}, (name, shapes)
        assert counts >= 1

    def labels(name: str, key: str) -> set[Any]:
        return {point.attributes.get(key) for metric in arrived[name] for point in metric.points}

    assert labels("gen_ai.client.token.usage", "gen_ai.token.type") == {"input", "output"}
    assert "scripted" in labels("gen_ai.server.time_to_first_token", "gen_ai.request.model")

    prometheus = httpx.get(stack.a.url + "/metrics", timeout=10).text
    assert "webapp_streams_started" in prometheus and "gen_ai" not in prometheus

    # Negative control for the switch: B (WEBAPP_METRICS=prometheus) exports spans, and no metric at all.
    b_span = span_of(receiver, "stream sse", b_stream.stream_id)  # B's exporter reaches the receiver

    def a_exported_since(after_ns: int) -> bool:  # A collected at least once since: its 500 ms cadence went by
        return any(point.time_ns > after_ns for metric in metrics_from(receiver, SERVICE_A) for point in metric.points)

    receiver.wait_for(lambda: a_exported_since(b_span.end_ns + 1_000_000_000), 5, "A's metrics 1 s after B's stream")
    assert metrics_from(receiver, SERVICE_B) == []
    assert "webapp_streams_started" in httpx.get(stack.b.url + "/metrics", timeout=10).text
