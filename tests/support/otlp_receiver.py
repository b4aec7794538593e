"""A real OTLP/HTTP receiver on loopback, for tests (issue 27): what an exporter sends, decoded.

Neither the OpenTelemetry Collector nor Jaeger installs from the registries this project
reaches, so the end-to-end tests export to this instead: a threaded ``http.server`` that takes
``POST /v1/traces`` and ``POST /v1/metrics`` as the OTLP/HTTP exporters send them (binary
protobuf, ``Content-Encoding: gzip`` or ``deflate`` or none), decodes them with the official
``opentelemetry-proto`` classes (``ExportTraceServiceRequest``, ``ExportMetricsServiceRequest``)
and keeps plain records a test can assert on::

    with OTLPReceiver() as receiver:
        exporter = OTLPSpanExporter(endpoint=receiver.traces_url)      # or env: OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url
        ...
        span = receiver.wait_for(lambda: receiver.span("stream"), timeout=5)
        assert span.attributes["gen_ai.request.stream"] is True

It answers as a collector does (200 with an empty ``Export*ServiceResponse``); a body it cannot
decode gets a 400 and is kept in ``errors``, which a test can assert empty. OTLP/JSON is refused
(415): the exporters here send protobuf. Bounded: bodies over ``max_body_bytes`` (before or after
decompression) get a 413, at most ``max_records`` spans and metric records are kept (the rest are
counted in ``dropped``), a stalled client is cut after ``socket_timeout`` seconds, and the
receiver stops itself ``max_lifetime`` seconds after it started if nothing stopped it before.
"""

from __future__ import annotations

import threading
import time
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Mapping, TypeVar

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest, ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tests.support.servers import free_port

__all__ = [
    "OTLPReceiver",
    "ReceivedDataPoint",
    "ReceivedEvent",
    "ReceivedLink",
    "ReceivedMetric",
    "ReceivedRequest",
    "ReceivedSpan",
    "attributes_of",
    "value_of",
]

T = TypeVar("T")

TRACES_PATH = "/v1/traces"
METRICS_PATH = "/v1/metrics"
PROTOBUF = "application/x-protobuf"


# -- the records -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedLink:
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    attributes: Mapping[str, Any]


@dataclass(frozen=True)
class ReceivedEvent:
    name: str
    time_ns: int
    attributes: Mapping[str, Any]


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as it arrived. Ids are lowercase hex, as ``format(span_context.span_id, "016x")`` gives them."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None  # None for a root span
    kind: str  # "SERVER", "CLIENT", "INTERNAL", "PRODUCER", "CONSUMER" or "UNSPECIFIED"
    start_ns: int
    end_ns: int
    status_code: str  # "UNSET", "OK" or "ERROR", as opentelemetry.trace.StatusCode names them
    status_message: str
    attributes: Mapping[str, Any]
    links: tuple[ReceivedLink, ...]
    events: tuple[ReceivedEvent, ...]
    resource: Mapping[str, Any]
    scope: str  # the instrumentation scope (the tracer's name)
    trace_state: str = ""

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


@dataclass(frozen=True)
class ReceivedDataPoint:
    """A number point (``value``) or a histogram point (``count``, ``sum``, buckets, ``min``/``max``)."""

    attributes: Mapping[str, Any]
    start_ns: int
    time_ns: int
    value: float | int | None = None  # gauge and sum points
    count: int | None = None  # histogram, exponential histogram and summary points
    sum: float | None = None
    min: float | None = None
    max: float | None = None
    bucket_counts: tuple[int, ...] = ()  # explicit-bucket histograms
    explicit_bounds: tuple[float, ...] = ()
    quantiles: tuple[tuple[float, float], ...] = ()  # summaries: (quantile, value)


@dataclass(frozen=True)
class ReceivedMetric:
    """One metric of one export: a cumulative metric exported three times arrives as three records."""

    name: str
    description: str
    unit: str
    kind: str  # "histogram", "sum", "gauge", "exponential_histogram" or "summary"
    points: tuple[ReceivedDataPoint, ...]
    temporality: str  # "CUMULATIVE", "DELTA" or "UNSPECIFIED" ("" for a gauge)
    monotonic: bool | None  # sums only
    resource: Mapping[str, Any]
    scope: str  # the instrumentation scope (the meter's name)


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    status: int  # what the receiver answered
    content_type: str
    content_encoding: str
    body_bytes: int  # as sent (compressed, if it was)
    decoded_bytes: int  # after decompression


# -- protobuf to plain values ----------------------------------------------------------------


def value_of(value: AnyValue) -> Any:
    """An ``AnyValue`` as Python: arrays as tuples (as the SDK keeps sequence attributes), kvlists as dicts."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return tuple(value_of(item) for item in value.array_value.values)
    if which == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    return getattr(value, which)


def attributes_of(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    return {pair.key: value_of(pair.value) for pair in pairs}


def _hex(raw: bytes) -> str:
    return raw.hex()


def _scope_name(scope: InstrumentationScope) -> str:
    return scope.name


def _span(span: Span, resource: Mapping[str, Any], scope: str) -> ReceivedSpan:
    return ReceivedSpan(
        name=span.name,
        trace_id=_hex(span.trace_id),
        span_id=_hex(span.span_id),
        parent_span_id=_hex(span.parent_span_id) or None,
        kind=Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
        status_code=Status.StatusCode.Name(span.status.code).removeprefix("STATUS_CODE_"),
        status_message=span.status.message,
        attributes=attributes_of(span.attributes),
        links=tuple(ReceivedLink(_hex(link.trace_id), _hex(link.span_id), attributes_of(link.attributes)) for link in span.links),
        events=tuple(ReceivedEvent(event.name, event.time_unix_nano, attributes_of(event.attributes)) for event in span.events),
        resource=resource,
        scope=scope,
        trace_state=span.trace_state,
    )


def _optional(message: Any, name: str) -> Any:
    """A proto3 ``optional`` field's value, or None when the sender left it out (a histogram's sum, min, max)."""
    return getattr(message, name) if message.HasField(name) else None


def _metric(metric: Metric, resource: Mapping[str, Any], scope: str) -> ReceivedMetric:
    kind = metric.WhichOneof("data") or ""
    data: Any = getattr(metric, kind) if kind else None
    points: list[ReceivedDataPoint] = []
    temporality, monotonic = "", None
    if kind in ("gauge", "sum"):
        for point in data.data_points:
            number = point.WhichOneof("value")
            points.append(
                ReceivedDataPoint(
                    attributes_of(point.attributes),
                    point.start_time_unix_nano,
                    point.time_unix_nano,
                    value=getattr(point, number) if number else None,
                )
            )
        if kind == "sum":
            monotonic = data.is_monotonic
    elif kind == "histogram":
        for point in data.data_points:
            points.append(
                ReceivedDataPoint(
                    attributes_of(point.attributes),
                    point.start_time_unix_nano,
                    point.time_unix_nano,
                    count=point.count,
                    sum=_optional(point, "sum"),
                    min=_optional(point, "min"),
                    max=_optional(point, "max"),
                    bucket_counts=tuple(point.bucket_counts),
                    explicit_bounds=tuple(point.explicit_bounds),
                )
            )
    elif kind == "exponential_histogram":
        for point in data.data_points:
            points.append(
                ReceivedDataPoint(
                    attributes_of(point.attributes),
                    point.start_time_unix_nano,
                    point.time_unix_nano,
                    count=point.count,
                    sum=_optional(point, "sum"),
                    min=_optional(point, "min"),
                    max=_optional(point, "max"),
                )
            )
    elif kind == "summary":
        for point in data.data_points:
            points.append(
                ReceivedDataPoint(
                    attributes_of(point.attributes),
                    point.start_time_unix_nano,
                    point.time_unix_nano,
                    count=point.count,
                    sum=point.sum,
                    quantiles=tuple((q.quantile, q.value) for q in point.quantile_values),
                )
            )
    if kind in ("sum", "histogram", "exponential_histogram"):
        temporality = AggregationTemporality.Name(data.aggregation_temporality).removeprefix("AGGREGATION_TEMPORALITY_")
    return ReceivedMetric(
        name=metric.name,
        description=metric.description,
        unit=metric.unit,
        kind=kind,
        points=tuple(points),
        temporality=temporality,
        monotonic=monotonic,
        resource=resource,
        scope=scope,
    )


def decode_traces(body: bytes) -> list[ReceivedSpan]:
    """An ``ExportTraceServiceRequest``'s spans; ``DecodeError`` if it is not one."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans: list[ReceivedSpan] = []
    for resource_spans in request.resource_spans:
        resource = attributes_of(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = _scope_name(scope_spans.scope)
            spans.extend(_span(span, resource, scope) for span in scope_spans.spans)
    return spans


def decode_metrics(body: bytes) -> list[ReceivedMetric]:
    """An ``ExportMetricsServiceRequest``'s metrics; ``DecodeError`` if it is not one."""
    request = ExportMetricsServiceRequest()
    request.ParseFromString(body)
    metrics: list[ReceivedMetric] = []
    for resource_metrics in request.resource_metrics:
        resource = attributes_of(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            scope = _scope_name(scope_metrics.scope)
            metrics.extend(_metric(metric, resource, scope) for metric in scope_metrics.metrics)
    return metrics


class _TooLarge(Exception):
    pass


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """``body`` undone from its ``Content-Encoding``, refusing more than ``limit`` bytes of output."""
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":  # the Python exporter's Compression.Deflate is zlib.compress: the zlib format
        inflater = zlib.decompressobj(zlib.MAX_WBITS)
    else:
        raise ValueError(f"unsupported Content-Encoding {encoding!r}")
    out = inflater.decompress(body, limit + 1)
    if len(out) > limit or inflater.unconsumed_tail:
        raise _TooLarge(f"over {limit} bytes once decompressed")
    return out + inflater.flush()


# -- the server --------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request a connection: nothing is left open when the receiver stops
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.receiver.socket_timeout)  # a stalled client is cut, not waited for

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        receiver = self.server.receiver
        path = self.path.split("?", 1)[0]
        content_type = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        encoding = self.headers.get("Content-Encoding", "").strip().lower()
        length = self.headers.get("Content-Length")
        if length is None:
            return self._answer(411, path, content_type, encoding, 0, 0, b"")
        size = int(length)
        if size > receiver.max_body_bytes:
            return self._answer(413, path, content_type, encoding, size, 0, b"")
        body = self.rfile.read(size)
        if path not in (TRACES_PATH, METRICS_PATH):
            return self._answer(404, path, content_type, encoding, size, 0, b"")
        if content_type != PROTOBUF:
            return self._answer(415, path, content_type, encoding, size, 0, b"")
        try:
            decoded = _decompress(body, encoding, receiver.max_body_bytes)
        except _TooLarge:
            return self._answer(413, path, content_type, encoding, size, 0, b"")
        except (ValueError, zlib.error) as failure:
            receiver._failed(f"{path}: {failure}")
            return self._answer(400, path, content_type, encoding, size, 0, b"")
        try:
            spans = decode_traces(decoded) if path == TRACES_PATH else []
            metrics = decode_metrics(decoded) if path == METRICS_PATH else []
        except DecodeError as failure:
            receiver._failed(f"{path}: not an OTLP protobuf request ({failure})")
            return self._answer(400, path, content_type, encoding, size, len(decoded), b"")
        refused = receiver._take_refusal()
        if refused is not None:  # not accepted, so not kept: the exporter's retry delivers it once
            return self._answer(refused, path, content_type, encoding, size, len(decoded), b"")
        receiver._add_spans(spans)
        receiver._add_metrics(metrics)
        reply = (ExportTraceServiceResponse() if path == TRACES_PATH else ExportMetricsServiceResponse()).SerializeToString()
        self._answer(200, path, content_type, encoding, size, len(decoded), reply)

    def _answer(self, status: int, path: str, content_type: str, encoding: str, size: int, decoded: int, reply: bytes) -> None:
        self.server.receiver._record(ReceivedRequest(path, status, content_type, encoding, size, decoded))
        self.send_response(status)
        self.send_header("Content-Type", PROTOBUF)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: OTLPReceiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        """An exporter that gives up mid-request (its own timeout) is not the receiver's failure."""
        import sys

        failure = sys.exc_info()[1]
        if not isinstance(failure, (ConnectionError, TimeoutError)):
            self.receiver._failed(f"handler: {failure!r}")
            super().handle_error(request, client_address)


class OTLPReceiver:
    """``with OTLPReceiver() as receiver:``; export to ``receiver.url`` (the base) or ``traces_url``/``metrics_url``."""

    def __init__(
        self,
        *,
        max_body_bytes: int = 16 * 1024 * 1024,
        max_records: int = 50_000,
        socket_timeout: float = 10.0,
        max_lifetime: float = 600.0,
    ) -> None:
        self.max_body_bytes = max_body_bytes
        self.max_records = max_records
        self.socket_timeout = socket_timeout
        self.max_lifetime = max_lifetime
        self.dropped = 0  # spans and metric records past max_records
        self._spans: list[ReceivedSpan] = []
        self._metrics: list[ReceivedMetric] = []
        self._requests: list[ReceivedRequest] = []
        self._errors: list[str] = []
        self._refusals: list[int] = []
        self._changed = threading.Condition()
        self._server = _Server(("127.0.0.1", free_port()), _Handler)
        self._server.receiver = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="otlp")
        self._watchdog = threading.Timer(max_lifetime, self.stop)
        self._watchdog.daemon = True
        self._stopped = False
        self._stop_lock = threading.Lock()

    # -- where to export ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base, for ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the exporters add ``/v1/traces`` and ``/v1/metrics``)."""
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def traces_url(self) -> str:
        """For ``OTLPSpanExporter(endpoint=...)`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``: the full URL."""
        return self.url + TRACES_PATH

    @property
    def metrics_url(self) -> str:
        return self.url + METRICS_PATH

    # -- life ---------------------------------------------------------------------------------

    def start(self) -> OTLPReceiver:
        self._thread.start()
        self._watchdog.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; idempotent (the watchdog may have done it)."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        self._watchdog.cancel()
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        with self._changed:
            self._changed.notify_all()

    @property
    def stopped(self) -> bool:
        return self._stopped

    def __enter__(self) -> OTLPReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what arrived -------------------------------------------------------------------------

    def spans(self, name: str | None = None) -> list[ReceivedSpan]:
        """The spans received so far, in arrival order; only those called ``name`` if given."""
        with self._changed:
            return [span for span in self._spans if name is None or span.name == name]

    def span(self, name: str) -> ReceivedSpan | None:
        """The one span called ``name``, or None if none came yet; more than one is an error."""
        found = self.spans(name)
        if len(found) > 1:
            raise AssertionError(f"{len(found)} spans called {name!r}: {found}")
        return found[0] if found else None

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [span for span in self.spans() if span.trace_id == trace_id]

    def children(self, parent: ReceivedSpan) -> list[ReceivedSpan]:
        return [span for span in self.spans() if span.trace_id == parent.trace_id and span.parent_span_id == parent.span_id]

    def metrics(self, name: str | None = None) -> list[ReceivedMetric]:
        """Every metric record received, oldest first; only those called ``name`` if given."""
        with self._changed:
            return [metric for metric in self._metrics if name is None or metric.name == name]

    def metric(self, name: str) -> ReceivedMetric | None:
        """The latest record of metric ``name`` (a cumulative metric's latest holds its totals), or None."""
        found = self.metrics(name)
        return found[-1] if found else None

    def metric_names(self) -> set[str]:
        return {metric.name for metric in self.metrics()}

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._changed:
            return list(self._requests)

    @property
    def errors(self) -> list[str]:
        """Bodies that did not decode, and handler failures: a test that exports correctly expects none."""
        with self._changed:
            return list(self._errors)

    def clear(self) -> None:
        with self._changed:
            self._spans.clear()
            self._metrics.clear()
            self._requests.clear()
            self._errors.clear()
            self.dropped = 0

    def wait_for(self, predicate: Callable[[], T | None], timeout: float = 5.0, what: str = "") -> T:
        """Wait until ``predicate()`` is truthy and return it; re-checked on each request received.

        Raises ``TimeoutError`` after ``timeout`` seconds naming what has arrived, so a
        failure says whether nothing came or something else did.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                result = predicate()
                if result:
                    return result
                left = deadline - time.monotonic()
                if left <= 0 or self._stopped:
                    break
                self._changed.wait(min(left, 0.25))  # also polls: a predicate may depend on more than arrivals
        raise TimeoutError(f"waited {timeout} s for {what or 'the predicate'}; {self.summary()}")

    def wait_for_spans(self, count: int, name: str | None = None, timeout: float = 5.0) -> list[ReceivedSpan]:
        """At least ``count`` spans (called ``name``, if given); returns them all."""

        def enough() -> list[ReceivedSpan] | None:
            found = self.spans(name)
            return found if len(found) >= count else None

        return self.wait_for(enough, timeout, f"{count} span(s) {name or ''}".strip())

    def wait_for_metric(self, name: str, timeout: float = 5.0) -> ReceivedMetric:
        return self.wait_for(lambda: self.metric(name), timeout, f"metric {name}")

    def summary(self) -> str:
        with self._changed:
            statuses = [f"{r.path} {r.status}" for r in self._requests[-10:]]
            return (
                f"received {len(self._requests)} request(s) (last: {statuses}), "
                f"spans {sorted({s.name for s in self._spans})}, metrics {sorted({m.name for m in self._metrics})}, "
                f"errors {self._errors[-3:]}, dropped {self.dropped}" + (", STOPPED" if self._stopped else "")
            )

    # -- faults, for the tests of an exporter that cannot deliver -----------------------------

    def refuse_next(self, count: int = 1, status: int = 503) -> None:
        """Answer the next ``count`` well-formed exports with ``status``, keeping nothing of them."""
        with self._changed:
            self._refusals.extend([status] * count)

    # -- called by the handler ----------------------------------------------------------------

    def _take_refusal(self) -> int | None:
        with self._changed:
            return self._refusals.pop(0) if self._refusals else None

    def _keep(self, into: list[Any], items: list[Any]) -> None:
        room = max(0, self.max_records - len(self._spans) - len(self._metrics))
        into.extend(items[:room])
        self.dropped += max(0, len(items) - room)

    def _add_spans(self, spans: list[ReceivedSpan]) -> None:
        with self._changed:
            self._keep(self._spans, spans)

    def _add_metrics(self, metrics: list[ReceivedMetric]) -> None:
        with self._changed:
            self._keep(self._metrics, metrics)

    def _record(self, request: ReceivedRequest) -> None:
        with self._changed:
            if len(self._requests) < self.max_records:
                self._requests.append(request)
            self._changed.notify_all()

    def _failed(self, message: str) -> None:
        with self._changed:
            if len(self._errors) < 100:
                self._errors.append(message)
            self._changed.notify_all()
