"""OpenTelemetry for streams (``pip install "uncut[otel]"``): a span per response that lasts as long as the response.

``install()`` switches it on for this process; nothing else in uncut imports
OpenTelemetry. Then every response a view streams gets a span that begins
when the view decides to stream and ends when its last byte is written, or
when the client leaves, the deadline fires or the worker drains; a stream
that did not end with ``end`` has an error status. Inside it:

- the producer's greenlet runs with that span as its current context, so the
  official LangChain and OpenAI instrumentations (if installed) nest under it;
- this module's own LangChain handler records each model call
  (``chat {model}``), tool call (``execute_tool {name}``) and graph step
  (``step {node}``) as a child span (``langchain_spans=False`` leaves that to
  the official instrumentations);
- the span's traceparent is kept in the stream's ``start`` event, so a resume
  on any worker or host gets a span of its own, linked to it (and its child
  when the resume arrives with no trace of its own).

The parent is the incoming ``traceparent`` (the global propagator), or the
current span. With ``opentelemetry-instrumentation-flask`` installed, its
request span *is* the stream's span: uncut keeps it open past the view's
return (where that instrumentation ends it, before the first token) and ends
it with the stream, so the trace has one request span that ends at the right
time.

Metrics, by the GenAI semantic conventions' names (semconv 0.66b1, and the
genai repository's ``gen_ai.execute_tool.duration``): server request
duration by outcome, time to first token, time per output token, client
token usage by type and operation duration, tool duration.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Iterator, Mapping
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from opentelemetry import context as otel_context
from opentelemetry import metrics as otel_metrics
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.types import AttributeValue

from uncut.telemetry import NoTracer, StreamTrace, use_tracer

__all__ = ["OtelTracer", "install", "uninstall"]

SCOPE = "uncut"
# Where opentelemetry-instrumentation-flask keeps its request span, and what its teardown exits.
_FLASK_SPAN = "opentelemetry-flask.span_key"
_FLASK_ACTIVATION = "opentelemetry-flask.activation_key"
_FLASK_TOKEN = "opentelemetry-flask.token"

# The semantic conventions' advised bucket boundaries.
_DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
_TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0]
_TPOT_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5]
_TOKEN_BUCKETS: list[float] = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]


def install(
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: otel_metrics.MeterProvider | None = None,
    *,
    metrics: bool = True,
    langchain_spans: bool = True,
) -> OtelTracer:
    """Trace (and measure) every response from now on, in this process; the global providers by default."""
    tracer = OtelTracer(tracer_provider, meter_provider, metrics=metrics, langchain_spans=langchain_spans)
    use_tracer(tracer)
    return tracer


def uninstall() -> None:
    use_tracer(NoTracer())


class GenAIInstruments:
    """The GenAI metrics, by the conventions' names and units."""

    def __init__(self, meter: otel_metrics.Meter) -> None:
        def histogram(name: str, unit: str, description: str, buckets: list[float]) -> otel_metrics.Histogram:
            return meter.create_histogram(name, unit=unit, description=description, explicit_bucket_boundaries_advisory=buckets)

        self.request_duration = histogram(
            "gen_ai.server.request.duration", "s", "A streamed response, from the view's decision to its last byte.", _DURATION_BUCKETS
        )
        self.time_to_first_token = histogram(
            "gen_ai.server.time_to_first_token", "s", "From a stream's start to its first token.", _TTFT_BUCKETS
        )
        self.time_per_output_token = histogram(
            "gen_ai.server.time_per_output_token", "s", "A stream's time per token after the first.", _TPOT_BUCKETS
        )
        self.token_usage = histogram("gen_ai.client.token.usage", "{token}", "Tokens a model call used, by type.", _TOKEN_BUCKETS)
        self.operation_duration = histogram("gen_ai.client.operation.duration", "s", "A model call's duration.", _DURATION_BUCKETS)
        self.tool_duration = histogram("gen_ai.execute_tool.duration", "s", "A tool call's duration.", _DURATION_BUCKETS)


class OtelTracer:
    """uncut.telemetry's ``StreamTracer`` on OpenTelemetry."""

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: otel_metrics.MeterProvider | None = None,
        *,
        metrics: bool = True,
        langchain_spans: bool = True,
    ) -> None:
        from uncut import __version__

        self.tracer = trace.get_tracer(SCOPE, __version__, tracer_provider=tracer_provider)
        meter = otel_metrics.get_meter(SCOPE, __version__, meter_provider=meter_provider) if metrics else None
        self.instruments = GenAIInstruments(meter) if meter is not None else None
        self.langchain_spans = langchain_spans

    def response(
        self,
        kind: str,
        *,
        surface: str,
        stream_id: str,
        labels: Mapping[str, Any],
        environ: Mapping[str, Any],
        origin: str | None = None,
    ) -> StreamTrace:
        started = time.monotonic()
        origin_context = span_context_of(origin)
        links = [Link(origin_context, {"uncut.link": "stream"})] if origin_context is not None else []
        attributes: dict[str, AttributeValue] = {
            "uncut.stream.id": stream_id,
            "uncut.surface": surface,
            "uncut.response": kind,
            "gen_ai.request.stream": True,
            "gen_ai.operation.name": "chat",
            **_model_attributes(labels),
        }
        span = _adopt_flask_span(environ)
        if span is not None:
            span.set_attributes(attributes)
            for link in links:
                span.add_link(link.context, link.attributes)
        else:
            parent, span_kind = self._parent(environ, origin_context)
            span = self.tracer.start_span(f"{kind} {surface}", context=parent, kind=span_kind, attributes=attributes, links=links)
        return OtelTrace(self, span, kind, started)

    @staticmethod
    def _parent(environ: Mapping[str, Any], origin: SpanContext | None) -> tuple[otel_context.Context | None, SpanKind]:
        """The current span (a framework's instrumentation), else the request's traceparent, else the stream's own."""
        if trace.get_current_span().get_span_context().is_valid:
            return None, SpanKind.INTERNAL
        incoming = propagate.extract(environ, getter=ENVIRON_GETTER)
        if trace.get_current_span(incoming).get_span_context().is_valid:
            return incoming, SpanKind.SERVER
        if origin is not None:  # a resume with no trace of its own joins the stream's trace
            return trace.set_span_in_context(NonRecordingSpan(origin)), SpanKind.SERVER
        return None, SpanKind.SERVER


class OtelTrace:
    """One response's span, ended once by ``finished``; the producer runs inside it."""

    def __init__(self, owner: OtelTracer, span: Span, kind: str, started: float) -> None:
        self.owner = owner
        self.span = span
        self.kind = kind
        self.started = started
        self._handler: SpanHandler | None = None
        self._ended = False
        context = span.get_span_context()
        self.traceparent: str | None = traceparent_of(context) if context.is_valid else None

    @contextmanager
    def producing(self) -> Iterator[None]:
        token = otel_context.attach(trace.set_span_in_context(self.span))
        try:
            yield
        finally:
            if self._handler is not None:
                self._handler.end_open_spans()  # a cancelled stream's model call never reports its end
            otel_context.detach(token)

    def handlers(self) -> list[Any]:
        owner = self.owner
        if not owner.langchain_spans and owner.instruments is None:
            return []
        self._handler = SpanHandler(owner.tracer, self.span, owner.instruments, spans=owner.langchain_spans)
        return [self._handler]

    def finished(self, summary: Mapping[str, Any]) -> None:
        if self._ended:
            return
        self._ended = True
        ended_as = str(summary["outcome"])
        duration = time.monotonic() - self.started
        span = self.span
        span.set_attributes(_summary_attributes(summary))
        if ended_as == "completed":
            span.set_status(Status(StatusCode.OK))
        else:
            span.set_attribute("error.type", ended_as)
            span.set_status(Status(StatusCode.ERROR, ended_as))
        span.end()
        if self.owner.instruments is not None:
            self._record(self.owner.instruments, summary, ended_as, duration)

    def _record(self, instruments: GenAIInstruments, summary: Mapping[str, Any], outcome: str, duration: float) -> None:
        model = _model_attributes(summary)
        attributes: dict[str, Any] = {"gen_ai.operation.name": "chat", "uncut.outcome": outcome, **model}
        if outcome != "completed":
            attributes["error.type"] = outcome
        instruments.request_duration.record(duration, attributes)
        ttft_ms, tokens, total_ms = summary.get("ttft_ms"), summary.get("tokens") or 0, summary.get("duration_ms")
        if self.kind != "stream" or ttft_ms is None:
            return  # a resume's reader did not wait for the first token
        instruments.time_to_first_token.record(ttft_ms / 1000, model)
        if tokens > 1 and total_ms is not None and total_ms > ttft_ms:
            instruments.time_per_output_token.record((total_ms - ttft_ms) / 1000 / (tokens - 1), model)


class SpanHandler(BaseCallbackHandler):
    """Model calls, tool calls and graph steps as child spans of the stream's span; their metrics."""

    raise_error = False

    def __init__(self, tracer: trace.Tracer, root: Span, instruments: GenAIInstruments | None, *, spans: bool = True) -> None:
        self.tracer = tracer
        self.root = root
        self.instruments = instruments
        self.spans = spans
        self._open: dict[UUID, tuple[Span, float, dict[str, Any]]] = {}
        self._via: dict[UUID, UUID | None] = {}  # a run with no span of its own: its nearest ancestor's

    # -- the tree ---------------------------------------------------------------------------------

    def _parent(self, parent_run_id: UUID | None) -> Span:
        seen = 0
        while parent_run_id is not None and seen < 1000:
            if parent_run_id in self._open:
                return self._open[parent_run_id][0]
            parent_run_id = self._via.get(parent_run_id)
            seen += 1
        return self.root

    def _begin(self, run_id: UUID, parent_run_id: UUID | None, name: str, kind: SpanKind, attributes: dict[str, Any]) -> None:
        if not self.spans:
            self._open[run_id] = (trace.INVALID_SPAN, time.monotonic(), attributes)
            return
        parent = trace.set_span_in_context(self._parent(parent_run_id))
        span = self.tracer.start_span(name, context=parent, kind=kind, attributes=attributes)
        self._open[run_id] = (span, time.monotonic(), attributes)

    def _end(self, run_id: UUID, error_type: str | None = None, message: str = "") -> tuple[float, dict[str, Any]] | None:
        """End a call's span; its duration and its attributes (with ``error.type`` when it failed), for its metric."""
        found = self._open.pop(run_id, None)
        if found is None:
            return None
        span, started, attributes = found
        if error_type is not None:
            attributes = {**attributes, "error.type": error_type}
            span.set_attribute("error.type", error_type)
            span.set_status(Status(StatusCode.ERROR, message[:200]))
        span.end()
        return time.monotonic() - started, attributes

    def _failed(self, run_id: UUID, error: BaseException) -> tuple[float, dict[str, Any]] | None:
        return self._end(run_id, type(error).__name__, str(error))

    def end_open_spans(self) -> None:
        """The producer ended: whatever never reported its end (a cancel, a kill) ends now, as cancelled."""
        for run_id in list(self._open):
            self._end(run_id, "cancelled", "cancelled")
        self._via.clear()

    # -- models -----------------------------------------------------------------------------------

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[Any], *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        self._model_start(run_id, parent_run_id, "chat", kwargs)

    def on_llm_start(
        self, serialized: dict[str, Any], prompts: list[str], *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        self._model_start(run_id, parent_run_id, "text_completion", kwargs)

    def _model_start(self, run_id: UUID, parent_run_id: UUID | None, operation: str, kwargs: Mapping[str, Any]) -> None:
        metadata = kwargs.get("metadata") or {}
        params = kwargs.get("invocation_params") or {}
        model = params.get("model") or params.get("model_name") or metadata.get("ls_model_name") or ""
        attributes: dict[str, Any] = {"gen_ai.operation.name": operation}
        if model:
            attributes["gen_ai.request.model"] = str(model)
        if metadata.get("ls_provider"):
            attributes["gen_ai.provider.name"] = str(metadata["ls_provider"])
        self._begin(run_id, parent_run_id, f"{operation} {model}".strip(), SpanKind.CLIENT, attributes)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        found = self._open.get(run_id)
        if found is None:
            return
        usage = _usage(response)
        span, _, attributes = found
        if usage:
            span.set_attributes({f"gen_ai.usage.{kind}_tokens": count for kind, count in usage.items()})
        ended = self._end(run_id)
        if self.instruments is not None and ended is not None:
            self.instruments.operation_duration.record(*ended)
            for kind, count in usage.items():
                self.instruments.token_usage.record(count, {**attributes, "gen_ai.token.type": kind})

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        ended = self._failed(run_id, error)
        if self.instruments is not None and ended is not None:
            self.instruments.operation_duration.record(*ended)

    # -- tools ------------------------------------------------------------------------------------

    def on_tool_start(
        self, serialized: dict[str, Any], input_str: str, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        name = str((serialized or {}).get("name") or kwargs.get("name") or "tool")
        attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name}
        self._begin(run_id, parent_run_id, f"execute_tool {name}", SpanKind.INTERNAL, attributes)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._tool_ended(self._end(run_id))

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._tool_ended(self._failed(run_id, error))

    def _tool_ended(self, ended: tuple[float, dict[str, Any]] | None) -> None:
        if self.instruments is not None and ended is not None:
            self.instruments.tool_duration.record(*ended)

    # -- graph steps ------------------------------------------------------------------------------

    def on_chain_start(
        self, serialized: dict[str, Any], inputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        metadata = kwargs.get("metadata") or {}
        node = metadata.get("langgraph_node")
        if node is not None and kwargs.get("name") == node and self.spans:  # the node's own run, not one inside it
            step = metadata.get("langgraph_step")
            attributes = {"langgraph.node": str(node), **({"langgraph.step": int(step)} if isinstance(step, int) else {})}
            self._begin(run_id, parent_run_id, f"step {node}", SpanKind.INTERNAL, attributes)
        else:
            self._via[run_id] = parent_run_id

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._via.pop(run_id, None)
        self._end(run_id)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._via.pop(run_id, None)
        # A graph's interrupt (a pause for approval) ends its step by raising; it is no error.
        if type(error).__name__ == "GraphInterrupt":
            self._end(run_id)
        else:
            self._failed(run_id, error)


# -- helpers --------------------------------------------------------------------------------------


class _EnvironGetter(Getter[Mapping[str, Any]]):
    """Headers from a WSGI environ (``traceparent`` is ``HTTP_TRACEPARENT``)."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get("HTTP_" + key.upper().replace("-", "_"))
        return [value] if isinstance(value, str) else None

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return [key[5:].lower().replace("_", "-") for key in carrier if key.startswith("HTTP_")]


ENVIRON_GETTER = _EnvironGetter()


class _KeptOpen:
    """Stands in for the Flask instrumentation's activation: its teardown exits this, which ends nothing.

    That teardown then detaches the request's context token (a reset to before the request).
    """

    def __exit__(self, *exc: Any) -> None:
        return None


def _exit_without_ending(activation: Any, span: Span) -> bool:
    """Exit the instrumentation's ``use_span(span, end_on_exit=True)`` now, but for its ``span.end()``.

    Merely dropping the activation would not do: its generator is closed when
    the last reference goes, and its ``finally`` ends the span right then, in the
    view. Exited here instead, in the request's context where it was entered, its
    detach is in order; the span's ``end`` is shadowed for that one exit. False
    (nothing done) for a span whose ``end`` cannot be shadowed.
    """
    try:
        setattr(span, "end", _no_end)  # an instance attribute, for this exit only
    except AttributeError:
        return False
    try:
        activation.__exit__(None, None, None)
    finally:
        delattr(span, "end")
    return True


def _no_end(end_time: int | None = None) -> None:
    return None


def _adopt_flask_span(environ: Mapping[str, Any]) -> Span | None:
    """The Flask instrumentation's request span, taken over so that it ends with the stream, not the view."""
    span = environ.get(_FLASK_SPAN)
    if (
        span is None
        or not isinstance(environ, dict)
        or environ.get(_FLASK_ACTIVATION) is None
        or environ.get(_FLASK_TOKEN) is None  # without its token, its teardown could not undo the attach
        or not span.is_recording()
    ):
        return None
    if not _exit_without_ending(environ[_FLASK_ACTIVATION], span):
        return None
    environ[_FLASK_ACTIVATION] = _KeptOpen()
    return span  # type: ignore[no-any-return]


def traceparent_of(context: SpanContext) -> str:
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def span_context_of(traceparent: str | None) -> SpanContext | None:
    """A remote span context from a W3C traceparent; None for anything malformed."""
    if not traceparent:
        return None
    parts = traceparent.split("-")
    if len(parts) != 4 or parts[0] != "00" or len(parts[1]) != 32 or len(parts[2]) != 16 or len(parts[3]) != 2:
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    if not trace_id or not span_id:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags))


def _model_attributes(labels: Mapping[str, Any]) -> dict[str, str]:
    """The service's ``provider``/``model`` labels, under the GenAI names."""
    out = {}
    if labels.get("model"):
        out["gen_ai.request.model"] = str(labels["model"])
    if labels.get("provider"):
        out["gen_ai.provider.name"] = str(labels["provider"])
    return out


def _summary_attributes(summary: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"uncut.outcome": str(summary["outcome"])}
    if summary.get("ttft_ms") is not None:
        out["gen_ai.response.time_to_first_chunk"] = summary["ttft_ms"] / 1000
    for key, name in (
        ("tokens", "uncut.tokens"),
        ("heartbeats", "uncut.heartbeats"),
        ("events_sent", "uncut.events_sent"),
        ("resumed_after", "uncut.resumed_after"),
    ):
        if isinstance(summary.get(key), int):
            out[name] = summary[key]
    if summary.get("max_gap_ms") is not None:
        out["uncut.max_gap"] = summary["max_gap_ms"] / 1000
    return out


def _usage(response: Any) -> dict[str, int]:
    """Input and output tokens of a model call (``usage_metadata``, or the provider's ``token_usage``)."""
    for generations in getattr(response, "generations", None) or []:
        for generation in generations:
            usage = getattr(getattr(generation, "message", None), "usage_metadata", None)
            if usage:
                return {"input": int(usage.get("input_tokens", 0)), "output": int(usage.get("output_tokens", 0))}
    token_usage = (getattr(response, "llm_output", None) or {}).get("token_usage") or {}
    if token_usage:
        return {"input": int(token_usage.get("prompt_tokens", 0)), "output": int(token_usage.get("completion_tokens", 0))}
    return {}
