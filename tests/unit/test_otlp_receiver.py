"""The test OTLP receiver (tests/support/otlp_receiver.py) decodes what the real OTel SDK's OTLP/HTTP exporters send.

Issue 27's end-to-end tests trust it to see spans and metrics as a collector would, so it is
checked here against the official exporters: a parent and a child span with attributes, a
link, an error status and an event; a histogram with its unit and a counter; every
compression the exporters offer; and the receiver's own refusals and bounds.
"""

from __future__ import annotations

import gzip
import time
from typing import Iterator

import httpx
import pytest

pytest.importorskip("opentelemetry.exporter.otlp.proto.http")

from opentelemetry.exporter.otlp.proto.http import Compression  # noqa: E402
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter  # noqa: E402
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.trace import Link, SpanKind, Status, StatusCode  # noqa: E402

from tests.support import genai_semconv as semconv  # noqa: E402
from tests.support.otlp_receiver import OTLPReceiver  # noqa: E402

RESOURCE = Resource.create({"service.name": "uncut-receiver-test"})
EXPORT_TIMEOUT_S = 3.0


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver(socket_timeout=5.0, max_lifetime=60.0) as started:
        yield started


def _tracer_provider(receiver: OTLPReceiver, compression: Compression) -> TracerProvider:
    provider = TracerProvider(resource=RESOURCE)
    exporter = OTLPSpanExporter(endpoint=receiver.traces_url, timeout=EXPORT_TIMEOUT_S, compression=compression)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip, Compression.Deflate], ids=lambda c: c.value)
def test_spans_arrive_with_parent_attributes_link_status_and_event(receiver: OTLPReceiver, compression: Compression) -> None:
    provider = _tracer_provider(receiver, compression)
    tracer = provider.get_tracer("uncut.test")
    try:
        with tracer.start_as_current_span("earlier run") as earlier:
            pass
        with tracer.start_as_current_span(
            "stream",
            kind=SpanKind.SERVER,
            attributes={semconv.OPERATION_NAME: "chat", semconv.REQUEST_STREAM: True, "uncut.outcome": "end"},
            links=[Link(earlier.get_span_context(), {"uncut.link": "resume"})],
        ) as parent:
            with tracer.start_as_current_span("tool", attributes={semconv.TOOL_NAME: "search", "uncut.args": ("a", "b")}) as child:
                child.add_event("gen_ai.tool.result", {semconv.USAGE_OUTPUT_TOKENS: 7})
                child.set_status(Status(StatusCode.ERROR, "tool failed"))
            parent.set_attribute(semconv.RESPONSE_TIME_TO_FIRST_CHUNK, 0.25)
    finally:
        provider.shutdown()

    spans = receiver.wait_for_spans(3, timeout=5)
    assert receiver.errors == []
    by_name = {span.name: span for span in spans}
    stream, tool, run = by_name["stream"], by_name["tool"], by_name["earlier run"]
    context = parent.get_span_context()
    assert (stream.trace_id, stream.span_id) == (format(context.trace_id, "032x"), format(context.span_id, "016x"))
    assert stream.parent_span_id is None and stream.kind == "SERVER" and stream.status_code == "UNSET"
    assert stream.attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.stream": True,
        "uncut.outcome": "end",
        "gen_ai.response.time_to_first_chunk": 0.25,
    }
    assert [(link.trace_id, link.span_id, dict(link.attributes)) for link in stream.links] == [
        (run.trace_id, run.span_id, {"uncut.link": "resume"})
    ]
    assert tool.trace_id == stream.trace_id and tool.parent_span_id == stream.span_id and tool.kind == "INTERNAL"
    assert receiver.children(stream) == [tool]
    assert tool.attributes == {"gen_ai.tool.name": "search", "uncut.args": ("a", "b")}
    assert (tool.status_code, tool.status_message) == ("ERROR", "tool failed")
    assert [(event.name, dict(event.attributes)) for event in tool.events] == [("gen_ai.tool.result", {"gen_ai.usage.output_tokens": 7})]
    assert stream.start_ns <= tool.start_ns <= tool.end_ns <= stream.end_ns and 0 < stream.duration_s < 5
    assert stream.resource["service.name"] == "uncut-receiver-test" and stream.scope == "uncut.test"
    expected_encoding = "" if compression is Compression.NoCompression else compression.value
    assert {request.content_encoding for request in receiver.requests} == {expected_encoding}
    assert all(request.status == 200 and request.path == "/v1/traces" for request in receiver.requests)


def test_a_histogram_arrives_with_its_unit_and_a_counter_with_its_sum(receiver: OTLPReceiver) -> None:
    exporter = OTLPMetricExporter(endpoint=receiver.metrics_url, timeout=EXPORT_TIMEOUT_S, compression=Compression.Gzip)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=60_000)  # exported by force_flush below
    provider = MeterProvider(metric_readers=[reader], resource=RESOURCE)
    meter = provider.get_meter("uncut.test")
    spec = semconv.METRICS[semconv.SERVER_TIME_TO_FIRST_TOKEN]
    ttft = meter.create_histogram(spec.name, unit=spec.unit, description=spec.description)
    tokens = meter.create_counter("uncut.tokens", unit="{token}")
    try:
        ttft.record(0.2, {semconv.PROVIDER_NAME: "openai", semconv.REQUEST_MODEL: "m"})
        ttft.record(0.4, {semconv.PROVIDER_NAME: "openai", semconv.REQUEST_MODEL: "m"})
        tokens.add(5, {semconv.TOKEN_TYPE: "output"})
        assert provider.force_flush(timeout_millis=int(EXPORT_TIMEOUT_S * 1000))
    finally:
        provider.shutdown(timeout_millis=int(EXPORT_TIMEOUT_S * 1000))

    histogram = receiver.wait_for_metric(spec.name, timeout=5)
    assert receiver.errors == []
    assert (histogram.kind, histogram.unit, histogram.description) == ("histogram", "s", spec.description)
    assert histogram.temporality == "CUMULATIVE" and histogram.scope == "uncut.test"
    (point,) = histogram.points
    assert point.attributes == {"gen_ai.provider.name": "openai", "gen_ai.request.model": "m"}
    assert point.count == 2 and point.sum == pytest.approx(0.6) and (point.min, point.max) == (0.2, 0.4)
    assert sum(point.bucket_counts) == 2 and len(point.bucket_counts) == len(point.explicit_bounds) + 1
    counter = receiver.metric("uncut.tokens")
    assert counter is not None and (counter.kind, counter.unit, counter.monotonic) == ("sum", "{token}", True)
    assert [(p.value, dict(p.attributes)) for p in counter.points] == [(5, {"gen_ai.token.type": "output"})]
    assert {request.content_encoding for request in receiver.requests} == {"gzip"}


def test_what_is_not_an_otlp_export_is_refused_and_kept_out(receiver: OTLPReceiver) -> None:
    protobuf = {"Content-Type": "application/x-protobuf"}
    with httpx.Client(base_url=receiver.url, timeout=5) as client:
        assert client.post("/v1/traces", content=b"\xff\xff\xff", headers=protobuf).status_code == 400
        assert client.post("/v1/traces", content=b"{}", headers={"Content-Type": "application/json"}).status_code == 415
        assert client.post("/v1/logs", content=b"", headers=protobuf).status_code == 404
        bomb = gzip.compress(b"\0" * 4096)
        small = OTLPReceiver(max_body_bytes=1024)
        with small:
            gzipped = {**protobuf, "Content-Encoding": "gzip"}
            assert httpx.post(small.traces_url, content=bomb, headers=gzipped, timeout=5).status_code == 413
            assert httpx.post(small.traces_url, content=b"\0" * 2048, headers=protobuf, timeout=5).status_code == 413
        receiver.refuse_next(1, status=503)
        assert client.post("/v1/traces", content=b"", headers=protobuf).status_code == 503  # an empty export is well formed
        assert client.post("/v1/traces", content=b"", headers=protobuf).status_code == 200
    assert len(receiver.errors) == 1 and "not an OTLP protobuf request" in receiver.errors[0]
    assert receiver.spans() == []


def test_wait_for_says_what_arrived_when_it_times_out(receiver: OTLPReceiver) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"received 0 request\(s\)"):
        receiver.wait_for(lambda: receiver.span("never"), timeout=0.3, what="span never")
    assert 0.3 <= time.monotonic() - started < 2


def test_it_stops_itself_after_its_lifetime() -> None:
    receiver = OTLPReceiver(max_lifetime=0.2).start()
    try:
        deadline = time.monotonic() + 5
        while not receiver.stopped and time.monotonic() < deadline:
            time.sleep(0.02)
        assert receiver.stopped
        with pytest.raises(httpx.TransportError):
            httpx.post(receiver.traces_url, content=b"", headers={"Content-Type": "application/x-protobuf"}, timeout=2)
    finally:
        receiver.stop()
