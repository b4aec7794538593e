"""Issue 27: opentelemetry-instrumentation-flask alone ends a stream's span before the first token; with uncut.otel, at its last byte.

NEGATIVE CONTROL: the first test asserts the defect, on purpose. It is the status quo that issue
27's fix is measured against, and it keeps passing after the fix: it installs
``FlaskInstrumentor`` and nothing from uncut's own OpenTelemetry support. THE FIX: the second
test runs the same app and stream with ``FlaskInstrumentor`` and ``uncut.otel.install`` together,
and asserts the opposite: one request span (the instrumentation's, adopted by uncut: no span of
uncut's own beside it) that ends after the server wrote the stream's last byte and within 100 ms
of the client's last byte, with the stream's outcome, and the model call as its child.

The setup is a plain Flask app that uses ``uncut.flask.sse_response`` with the scripted
model, instrumented by ``FlaskInstrumentor().instrument_app``. Spans go to an in-memory
exporter through a ``SimpleSpanProcessor``, so a span is in the exporter as soon as it
ends. The app is served by a real threaded werkzeug server in a thread, and a real HTTP client
reads the stream line by line. When the first ``token`` event arrives, the test takes a
snapshot of the exporter.

Why the span ends early: the instrumentation ends its span in ``teardown_request``. Flask
3.1 runs that when the view returns, even though uncut wraps the body in
``stream_with_context``. Since Flask 3.1, ``stream_with_context`` pushes the request context
again only when iteration starts, after the original context has been popped and torn down.
So the span closes a millisecond or so after the view returns, while the model is still
waiting to produce its first token.

Each test uninstalls what it installed (uncut.otel, the app's instrumentation), so neither leaks
into the other or into the rest of the suite.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import httpx
import pytest
from flask import Flask

pytest.importorskip("opentelemetry.instrumentation.flask")

from opentelemetry.instrumentation.flask import FlaskInstrumentor  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import StatusCode  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from uncut import ScriptedChatModel, otel  # noqa: E402
from uncut.flask import sse_response  # noqa: E402
from uncut.telemetry import NoTracer, tracer  # noqa: E402

TTFT_S = 0.5  # the scripted model's wait before its first token: the span must be over well before it
INTERVAL_S = 0.02
TOKENS = 25  # so the stream lasts about TTFT_S + TOKENS * INTERVAL_S = 1.0 s
ROUTE = "/summarize"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


class WriteTimes:
    """Outermost WSGI middleware: when the server had written each chunk (it asks for the next one) and when the body ran out.

    The werkzeug server writes each chunk the body yields before it asks for the next, so
    ``last_written_ns`` is a server-side time at which the stream's last byte had been handed to
    the socket (the chunked encoding's terminator is written after ``exhausted_ns``).
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.last_written_ns = 0
        self.exhausted_ns = 0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        return self._timed(self.app(environ, start_response))

    def _timed(self, body: Iterable[bytes]) -> Iterator[bytes]:
        try:
            for chunk in body:
                yield chunk
                self.last_written_ns = time.time_ns()
            self.exhausted_ns = time.time_ns()
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()


@dataclass
class Served:
    base: str
    writes: WriteTimes = field(repr=False)


@contextmanager
def _serve(exporter: InMemorySpanExporter, *, with_uncut: bool) -> Iterator[Served]:
    """The instrumented app on a real threaded server (``with_uncut``: uncut.otel installed too), warmed up."""
    provider = TracerProvider()  # its own provider: the process-wide one is left alone
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    meters = MeterProvider()  # uncut's metrics go nowhere here: this file is about the spans
    app = Flask(__name__)
    model = ScriptedChatModel(ttft=TTFT_S, interval=INTERVAL_S, tokens=TOKENS)

    @app.post(ROUTE)
    def summarize() -> Any:
        return sse_response(model, "Summarize: a document")

    @app.post("/warm")
    def warm() -> Any:  # the first stream of a process builds its state: warmed here, so the numbers are the steady ones
        return sse_response(ScriptedChatModel(ttft=0, interval=0, tokens=1), "warm up")

    FlaskInstrumentor().instrument_app(app, tracer_provider=provider)
    writes = WriteTimes(app.wsgi_app)
    app.wsgi_app = writes  # type: ignore[method-assign]
    if with_uncut:
        otel.install(provider, meters)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="otel-control")
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        _read_stream(base + "/warm", lambda: None)
        exporter.clear()
        yield Served(base, writes)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        if with_uncut:
            otel.uninstall()
        FlaskInstrumentor().uninstrument_app(app)
        provider.shutdown()
        meters.shutdown()


@pytest.fixture
def served(exporter: InMemorySpanExporter) -> Iterator[str]:
    """The app with the Flask instrumentation alone; yields its base URL."""
    assert isinstance(tracer(), NoTracer), "uncut.otel was left installed by an earlier test"
    with _serve(exporter, with_uncut=False) as served:
        yield served.base


@pytest.fixture
def served_with_uncut(exporter: InMemorySpanExporter) -> Iterator[Served]:
    """The same app with uncut.otel installed too."""
    with _serve(exporter, with_uncut=True) as served:
        yield served
    assert isinstance(tracer(), NoTracer)


def _read_stream(url: str, on_first_token: Callable[[], None]) -> tuple[int, int, int, list[str]]:
    """POST and read the SSE stream line by line: (sent_ns, first_token_ns, last_byte_ns, event names)."""
    names: list[str] = []
    first_token_ns = 0
    with httpx.Client(timeout=10, trust_env=False) as client:
        sent_ns = time.time_ns()
        with client.stream("POST", url) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("event: "):
                    names.append(line.removeprefix("event: "))
                    if names[-1] == "token" and not first_token_ns:
                        first_token_ns = time.time_ns()
                        on_first_token()
        last_byte_ns = time.time_ns()
    return sent_ns, first_token_ns, last_byte_ns, names


def test_flask_instrumentation_alone_ends_the_request_span_before_the_first_token(
    served: str, exporter: InMemorySpanExporter, record_property: Callable[[str, object], None]
) -> None:
    at_first_token: list[ReadableSpan] = []
    sent_ns, first_token_ns, last_byte_ns, names = _read_stream(
        served + ROUTE, lambda: at_first_token.extend(exporter.get_finished_spans())
    )

    # The stream itself is whole: the defect is in the telemetry only.
    assert names[0] == "start" and names[-1] == "end" and names.count("token") == TOKENS, names
    stream_s = (last_byte_ns - sent_ns) / 1e9
    ttft_s = (first_token_ns - sent_ns) / 1e9
    assert ttft_s >= TTFT_S and stream_s >= TTFT_S + (TOKENS - 1) * INTERVAL_S

    (span,) = exporter.get_finished_spans()
    assert span.name == f"POST {ROUTE}" and span.start_time is not None and span.end_time is not None
    span_s = (span.end_time - span.start_time) / 1e9
    ended_before_first_token_s = (first_token_ns - span.end_time) / 1e9
    numbers = {
        "span_ms": round(span_s * 1000, 1),
        "ttft_ms": round(ttft_s * 1000, 1),
        "stream_ms": round(stream_s * 1000, 1),
        "span_ended_before_first_token_ms": round(ended_before_first_token_s * 1000, 1),
        "span_ended_before_last_byte_ms": round((last_byte_ns - span.end_time) / 1e6, 1),
    }
    for key, value in numbers.items():
        record_property(key, value)

    # The status quo that issue 27 fixes:
    assert [s.name for s in at_first_token] == [span.name], f"the span had not ended at the first token: {numbers}"
    assert span.end_time < first_token_ns, numbers
    assert span_s < stream_s / 10, f"the request span should cover a small part of the stream: {numbers}"
    assert span.status.is_unset or span.status.is_ok, numbers  # and it reports success, whatever the stream does later


def test_with_uncut_otel_the_flask_request_span_is_adopted_and_ends_with_the_last_byte(
    served_with_uncut: Served, exporter: InMemorySpanExporter, record_property: Callable[[str, object], None]
) -> None:
    """THE FIX, against the control above: the same app and stream, with uncut.otel installed beside the instrumentation."""
    at_first_token: list[ReadableSpan] = []
    sent_ns, first_token_ns, last_byte_ns, names = _read_stream(
        served_with_uncut.base + ROUTE, lambda: at_first_token.extend(exporter.get_finished_spans())
    )
    assert names[0] == "start" and names[-1] == "end" and names.count("token") == TOKENS, names
    writes = served_with_uncut.writes

    deadline = time.monotonic() + 5
    while not any(s.name == f"POST {ROUTE}" for s in exporter.get_finished_spans()) and time.monotonic() < deadline:
        time.sleep(0.01)
    spans = exporter.get_finished_spans()
    requests = [s for s in spans if s.name == f"POST {ROUTE}"]
    assert len(requests) == 1, [s.name for s in spans]
    (span,) = requests
    assert not [s for s in spans if s.name.startswith(("stream ", "resume "))], "one request span: uncut adopted it, made none of its own"
    assert span.start_time is not None and span.end_time is not None
    numbers = {
        "span_ms": round((span.end_time - span.start_time) / 1e6, 1),
        "stream_ms": round((last_byte_ns - sent_ns) / 1e6, 1),
        "span_end_minus_client_last_byte_ms": round((span.end_time - last_byte_ns) / 1e6, 2),
        "span_end_minus_server_last_write_ms": round((span.end_time - writes.last_written_ns) / 1e6, 3),
        "body_exhausted_minus_span_end_ms": round((writes.exhausted_ns - span.end_time) / 1e6, 3),
        "span_end_minus_first_token_ms": round((span.end_time - first_token_ns) / 1e6, 1),
    }
    for key, value in numbers.items():
        record_property(key, value)

    # The opposite of the control: open at the first token, closed only once the last byte was written.
    assert span.name not in [s.name for s in at_first_token], f"the request span had ended by the first token: {numbers}"
    assert writes.last_written_ns <= span.end_time <= writes.exhausted_ns, f"ended while the body wrote its last byte: {numbers}"
    assert abs(span.end_time - last_byte_ns) < 100_000_000, f"within 100 ms of the client's last byte: {numbers}"
    assert span.start_time <= sent_ns + (first_token_ns - sent_ns) // 2, numbers  # it began with the request, not with the stream
    assert span.status.status_code == StatusCode.OK, (span.status, numbers)

    attributes = dict(span.attributes or {})
    assert attributes["uncut.outcome"] == "completed" and attributes["uncut.tokens"] == TOKENS, attributes
    assert TTFT_S <= attributes["gen_ai.response.time_to_first_chunk"] < TTFT_S + 0.3, attributes
    assert attributes["uncut.surface"] == "sse" and attributes["gen_ai.request.stream"] is True, attributes
    assert attributes["http.route"] == ROUTE and attributes["http.status_code"] == 200, attributes  # still the instrumentation's span

    models = [s for s in spans if s.name.startswith("chat ")]
    assert len(models) == 1, [s.name for s in spans]
    (model,) = models
    assert model.parent is not None and model.parent.span_id == span.context.span_id, "the model call is the request span's child"
    assert model.context.trace_id == span.context.trace_id
    assert model.end_time is not None and model.end_time <= span.end_time
