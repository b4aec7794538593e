"""uncut.otel with the real OpenTelemetry SDK and an in-memory exporter: the span lasts as long as the stream."""

from __future__ import annotations

import time
from typing import Any, Iterator

import pytest

pytest.importorskip("opentelemetry.sdk", reason="pip install 'uncut[otel]'")

from langchain_core.messages import HumanMessage
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from tests.support.genai_semconv import METRICS as GENAI_METRICS
from uncut import ScriptedChatModel, Streams, otel
from uncut.eventlog import Event
from uncut.telemetry import NoTracer, tracer

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


class Telemetry:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.metrics = InMemoryMetricReader()
        otel.install(provider, MeterProvider(metric_readers=[self.metrics]))

    def named(self, name: str) -> ReadableSpan:
        found = [span for span in self.spans.get_finished_spans() if span.name == name]
        assert len(found) == 1, [span.name for span in self.spans.get_finished_spans()]
        return found[0]

    def metric(self, name: str) -> Any:
        data = self.metrics.get_metrics_data()
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        return metric
        return None


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    installed = Telemetry()
    try:
        yield installed
    finally:
        otel.uninstall()


def read_all(relay: Any) -> tuple[list[Event], float]:
    """Every event, and when the last one was handed over (monotonic)."""
    seen: list[Event] = []
    Streams.collect(relay, lambda event: seen.append(event) or b"")
    return seen, time.monotonic()


def test_the_span_lasts_as_long_as_the_stream_and_holds_its_figures(telemetry: Telemetry) -> None:
    streams = Streams(metadata={"provider": "scripted", "model": "scripted-1"})
    began = time.time_ns()
    events, _ = read_all(streams.stream(ScriptedChatModel(tokens=6, ttft=0.3, interval=0.05), [HumanMessage("hi")]))
    assert events[-1].kind == "end"
    span = telemetry.named("stream sse")
    assert span.end_time is not None and span.start_time is not None
    assert (span.end_time - span.start_time) / 1e9 >= 0.3 + 5 * 0.05 - 0.02  # the whole stream, not the view
    assert span.start_time >= began
    attributes = dict(span.attributes or {})
    assert attributes["uncut.outcome"] == "completed" and attributes["uncut.tokens"] == 6
    assert attributes["gen_ai.request.model"] == "scripted-1" and attributes["gen_ai.provider.name"] == "scripted"
    assert attributes["gen_ai.request.stream"] is True and 0.25 < attributes["gen_ai.response.time_to_first_chunk"] < 1.0
    assert span.status.status_code is StatusCode.OK
    assert events[0].data["traceparent"] == otel.traceparent_of(span.get_span_context())  # kept with the stream
    model = telemetry.named("chat scripted")  # the model call, under the stream
    assert model.parent is not None and model.parent.span_id == span.get_span_context().span_id
    assert model.end_time is not None and model.end_time <= span.end_time


def test_a_failed_stream_is_an_error_and_a_traceparent_is_the_parent(telemetry: Telemetry) -> None:
    environ = {"HTTP_TRACEPARENT": PARENT}
    events, _ = read_all(Streams().stream(ScriptedChatModel(tokens=6, ttft=0, interval=0, fail_at=2), "hi", environ=environ))
    assert events[-1].kind == "error"
    span = telemetry.named("stream sse")
    assert span.status.status_code is StatusCode.ERROR
    assert dict(span.attributes or {})["error.type"] == "upstream_error"
    assert f"{span.context.trace_id:032x}" == TRACE_ID and span.parent is not None and span.parent.span_id == 0xB7AD6B7169203331


def test_a_resume_is_its_own_span_linked_to_the_streams(telemetry: Telemetry) -> None:
    streams = Streams()
    relay = streams.stream(ScriptedChatModel(tokens=4, ttft=0, interval=0), "hi", on_disconnect="continue")
    events, _ = read_all(relay)
    resumed = streams.follow(relay.stream_id, 1)
    assert resumed is not None
    read_all(resumed)
    first, resume = telemetry.named("stream sse"), telemetry.named("resume sse")
    assert [link.context.span_id for link in resume.links] == [first.context.span_id]
    assert resume.context.trace_id == first.context.trace_id  # no trace of its own: it joins the stream's
    assert dict(resume.attributes or {})["uncut.resumed_after"] == 1


def test_a_body_closed_before_its_first_byte_ends_its_span(telemetry: Telemetry) -> None:
    streams = Streams()
    relay = streams.stream(ScriptedChatModel(tokens=4, ttft=0.2, interval=0), "hi")
    Streams.body(relay).close()
    span = telemetry.named("stream sse")
    assert dict(span.attributes or {})["uncut.outcome"] == "client_disconnected"
    assert span.status.status_code is StatusCode.ERROR


def test_the_genai_metrics_carry_the_conventions_names_and_units(telemetry: Telemetry) -> None:
    read_all(Streams().stream(ScriptedChatModel(tokens=5, ttft=0.05, interval=0.01), "hi"))
    for name in ("gen_ai.server.request.duration", "gen_ai.server.time_to_first_token", "gen_ai.server.time_per_output_token"):
        metric = telemetry.metric(name)
        assert metric is not None, name
        assert metric.unit == GENAI_METRICS[name].unit, name
    duration = telemetry.metric("gen_ai.server.request.duration").data.data_points[0]
    assert dict(duration.attributes)["uncut.outcome"] == "completed" and duration.count == 1
    usage = telemetry.metric("gen_ai.client.token.usage")
    assert usage is not None and {dict(p.attributes)["gen_ai.token.type"] for p in usage.data.data_points} == {"input", "output"}


def test_off_is_nothing() -> None:
    assert isinstance(tracer(), NoTracer)
    events, _ = read_all(Streams().stream(ScriptedChatModel(tokens=2, ttft=0, interval=0), "hi"))
    assert "traceparent" not in events[0].data


def test_flask_config_switches_it_on_and_a_bad_value_names_the_key() -> None:
    from flask import Flask

    from uncut.flask import Streaming
    from uncut.otel import OtelTracer

    app = Flask(__name__)
    app.config["UNCUT_OTEL"] = "maybe"
    with pytest.raises(ValueError, match=r"app.config\['UNCUT_OTEL'\]='maybe'"):
        Streaming(app)
    app.config["UNCUT_OTEL"] = "true"
    try:
        Streaming(app)
        assert isinstance(tracer(), OtelTracer)
    finally:
        otel.uninstall()
    app.config["UNCUT_OTEL"] = False
    Streaming(app)
    assert isinstance(tracer(), NoTracer)
