"""Where the service's streams report: Prometheus, OpenTelemetry, or both (``WEBAPP_METRICS``, ``WEBAPP_OTEL``).

OpenTelemetry is imported only when one of them asks for it. Its exporter
is OTLP over HTTP, configured by the standard ``OTEL_*`` variables, which
the SDK's exporters and readers read themselves; ``OTEL_TRACES_EXPORTER`` /
``OTEL_METRICS_EXPORTER`` ``none`` keep the spans and metrics in the
process (the cost of tracing, without its export).

With tracing on, the official OpenAI instrumentation
(``opentelemetry-instrumentation-openai-v2``) is switched on too when it is
installed, so each request to the provider is a client span under the
stream's span, beside uncut's own ``chat`` span (``_instrument_openai``).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from typing import Any

from uncut import prometheus
from uncut.telemetry import NoMetrics, NoTracer, use_metrics, use_tracer
from webapp.config import ConfigError, Settings

DEFAULT_SERVICE_NAME = "uncut-webapp"


def install_telemetry(settings: Settings) -> None:
    """Install this process's metrics sinks and tracer, as the settings say (each create_app sets all of them)."""
    if settings.metrics in ("prometheus", "both"):
        prometheus.install(prefix="webapp")  # the service's metric names, webapp_streams_started and so on
    else:
        use_metrics(NoMetrics())
    otel_metrics = settings.metrics in ("otel", "both")
    _uninstrument_openai()
    if not settings.otel and not otel_metrics:
        use_tracer(NoTracer())
        return
    try:
        from uncut.otel import install as install_otel
    except ImportError as exc:
        raise ConfigError(f"WEBAPP_OTEL / WEBAPP_METRICS=otel need OpenTelemetry: pip install 'uncut[otel]' ({exc})") from exc
    tracer_provider = _tracer_provider(settings.otel)
    install_otel(tracer_provider, _meter_provider() if otel_metrics else None, metrics=otel_metrics)
    if settings.otel:
        _instrument_openai(tracer_provider)


# Whether _instrument_openai switched the OpenAI instrumentation on (and so may switch it off).
_openai_instrumented_here = False


def _instrument_openai(tracer_provider: Any) -> None:
    """The official OpenAI instrumentation, if installed and not on already, reporting to the service's tracer provider.

    The design: installed means wanted, as under ``opentelemetry-instrument``, and the standard
    ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=openai`` turns it off. uncut's own spans stay on: the
    instrumentation's ``chat {model}`` span (the HTTP call, as the openai client sees it) is a child
    of the stream's span, beside uncut's ``chat {model}`` (the model call, as LangChain sees it).
    Only its spans: its metrics would count again the ``gen_ai.client.*`` ones uncut records.
    An instrumentation someone else switched on (``opentelemetry-instrument``) is left as it is.
    """
    global _openai_instrumented_here
    disabled = {name.strip() for name in os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").split(",")}
    if "openai" in disabled or not _installed("opentelemetry.instrumentation.openai_v2"):
        return
    try:
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
        from opentelemetry.metrics import NoOpMeterProvider
    except ImportError as exc:  # installed, but not with versions that go together
        logging.getLogger(__name__).warning("opentelemetry-instrumentation-openai-v2 does not import, so it is off: %s", exc)
        return
    instrumentor = OpenAIInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        return
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=NoOpMeterProvider())
    _openai_instrumented_here = instrumentor.is_instrumented_by_opentelemetry


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # not even its parent package
        return False


def _uninstrument_openai() -> None:
    """Undo this module's _instrument_openai (a later create_app sets it again, with its own provider)."""
    global _openai_instrumented_here
    if not _openai_instrumented_here:
        return
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    OpenAIInstrumentor().uninstrument()
    _openai_instrumented_here = False


def _resource() -> Any:
    from opentelemetry.sdk.resources import Resource

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": DEFAULT_SERVICE_NAME}
    return Resource.create(attributes)  # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win


def _exporter_wanted(variable: str) -> bool:
    chosen = os.environ.get(variable, "otlp").strip().lower()
    if chosen not in ("otlp", "none"):
        raise ConfigError(f"{variable}={chosen!r}: the service exports OTLP over HTTP (otlp) or nothing (none)")
    return chosen == "otlp"


def _tracer_provider(tracing: bool) -> Any:
    from opentelemetry import trace

    if not tracing:
        return trace.NoOpTracerProvider()  # metrics only: spans cost nothing
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider(resource=_resource())
    if _exporter_wanted("OTEL_TRACES_EXPORTER"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _make_global(trace.set_tracer_provider, provider)  # the official instrumentations report here too
    return provider


def _meter_provider() -> Any:
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider

    readers = []
    if _exporter_wanted("OTEL_METRICS_EXPORTER"):
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))  # OTEL_METRIC_EXPORT_INTERVAL
    provider = MeterProvider(metric_readers=readers, resource=_resource())
    _make_global(metrics.set_meter_provider, provider)
    return provider


def _make_global(setter: Any, provider: Any) -> None:
    """The first provider a process makes is the global one (OpenTelemetry allows one; a second create_app keeps it)."""
    logger = logging.getLogger("opentelemetry")
    level = logger.level
    logger.setLevel(logging.ERROR)  # "Overriding of current TracerProvider is not allowed" on a second app
    try:
        setter(provider)
    finally:
        logger.setLevel(level)
