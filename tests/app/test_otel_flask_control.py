"""NEGATIVE CONTROL for issue 27: opentelemetry-instrumentation-flask alone ends a stream's span before the first token.

This test asserts the defect, on purpose. It is the status quo that issue 27's fix is
measured against, and it should keep passing after the fix: it installs
``FlaskInstrumentor`` and nothing from uncut's own OpenTelemetry support. When the fix lands,
its test runs the same stream with uncut's span and asserts the opposite: a span that ends
within 100 ms of the last byte.

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
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterator

import httpx
import pytest
from flask import Flask

pytest.importorskip("opentelemetry.instrumentation.flask")

from opentelemetry.instrumentation.flask import FlaskInstrumentor  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from uncut import ScriptedChatModel  # noqa: E402
from uncut.flask import sse_response  # noqa: E402

TTFT_S = 0.5  # the scripted model's wait before its first token: the span must be over well before it
INTERVAL_S = 0.02
TOKENS = 25  # so the stream lasts about TTFT_S + TOKENS * INTERVAL_S = 1.0 s
ROUTE = "/summarize"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def served(exporter: InMemorySpanExporter) -> Iterator[str]:
    """The instrumented app on a real threaded server; yields its base URL."""
    provider = TracerProvider()  # its own provider: the process-wide one is left alone
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = Flask(__name__)
    model = ScriptedChatModel(ttft=TTFT_S, interval=INTERVAL_S, tokens=TOKENS)

    @app.post(ROUTE)
    def summarize() -> Any:
        return sse_response(model, "Summarize: a document")

    @app.post("/warm")
    def warm() -> Any:  # the first stream of a process builds its state: warmed here, so the numbers are the steady ones
        return sse_response(ScriptedChatModel(ttft=0, interval=0, tokens=1), "warm up")

    FlaskInstrumentor().instrument_app(app, tracer_provider=provider)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="otel-control")
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        _read_stream(base + "/warm", lambda: None)
        exporter.clear()
        yield base
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        FlaskInstrumentor().uninstrument_app(app)
        provider.shutdown()


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
