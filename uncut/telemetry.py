"""Where streams report what happened: nowhere by default; Prometheus with ``uncut.prometheus.install()``,
OpenTelemetry with ``uncut.otel.install()``, or both.

The core calls ``metrics()`` at a few points only (a stream started,
refused, resumed or finished; a stream's first token, its tokens in
batches, its longest gap) and ``tracer()`` once per response, so that it
imports no metrics or tracing library. Any object with these methods can
be installed with ``use_metrics`` / ``use_tracer``; ``use_metrics`` with
several sinks reports to each.
"""

from __future__ import annotations

import warnings
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Mapping, Protocol, Sequence

from uncut.errors import OUTCOMES as _OUTCOMES
from uncut.options import parse_bool

__all__ = [
    "NoMetrics",
    "NoTracer",
    "OUTCOMES",
    "StreamMetrics",
    "StreamTrace",
    "StreamTracer",
    "add_metrics",
    "metrics",
    "otel_switch",
    "tracer",
    "tracing",
    "use_metrics",
    "use_tracer",
]

# How a streamed response can end (its summary's "outcome"), and "rejected" for one never admitted: uncut.errors.OUTCOMES
# but for "abandoned", a run's own outcome (Producer.outcome), whose readers' responses end "cancelled".
OUTCOMES = tuple(outcome for outcome in _OUTCOMES if outcome != "abandoned")


class StreamMetrics(Protocol):
    def stream_started(self, surface: str) -> None: ...
    def stream_finished(self, surface: str, outcome: str) -> None: ...
    def stream_rejected(self, surface: str) -> None: ...
    def stream_resumed(self) -> None: ...
    def heartbeats_sent(self, count: int) -> None: ...
    def first_token(self, ttft: float) -> None: ...
    def tokens_streamed(self, count: int) -> None: ...
    def producer_finished(self, max_gap: float | None) -> None: ...


class NoMetrics:
    """Counts nothing."""

    def stream_started(self, surface: str) -> None: ...
    def stream_finished(self, surface: str, outcome: str) -> None: ...
    def stream_rejected(self, surface: str) -> None: ...
    def stream_resumed(self) -> None: ...
    def heartbeats_sent(self, count: int) -> None: ...
    def first_token(self, ttft: float) -> None: ...
    def tokens_streamed(self, count: int) -> None: ...
    def producer_finished(self, max_gap: float | None) -> None: ...


_current: StreamMetrics = NoMetrics()


def metrics() -> StreamMetrics:
    return _current


def use_metrics(sink: StreamMetrics | Sequence[StreamMetrics]) -> None:
    """Report to ``sink`` from now on, in this process (to each, given several: Prometheus and OpenTelemetry).

    A sink written for uncut 0.2 (``generation_tokens``, ``generation_finished``)
    still works until 0.4, with a ``DeprecationWarning``.
    """
    global _current
    if isinstance(sink, Sequence):
        sinks = [_with_current_names(one) for one in sink]
        _current = sinks[0] if len(sinks) == 1 else _EverySink(sinks) if sinks else NoMetrics()
        return
    _current = _with_current_names(sink)


def add_metrics(sink: StreamMetrics) -> None:
    """Report to ``sink`` too, besides what is installed (Prometheus and OpenTelemetry side by side)."""
    current = _current.sinks if isinstance(_current, _EverySink) else () if isinstance(_current, NoMetrics) else (_current,)
    use_metrics([*current, sink])


def _with_current_names(sink: StreamMetrics) -> StreamMetrics:
    old_names = [old for new, old in _RENAMED.items() if not hasattr(sink, new) and hasattr(sink, old)]
    if old_names:
        warnings.warn(
            f"{type(sink).__name__}.{', .'.join(old_names)}: renamed in uncut 0.3 ({_renamed_list()}); the old names go in 0.4",
            DeprecationWarning,
            stacklevel=3,
        )
        return _OldNames(sink)
    return sink


class _EverySink:
    """Several sinks as one: each call goes to each."""

    def __init__(self, sinks: Sequence[StreamMetrics]) -> None:
        self.sinks = tuple(sinks)

    def __getattr__(self, name: str) -> Any:
        methods = [getattr(sink, name) for sink in self.sinks]

        def every(*args: Any) -> None:
            for method in methods:
                method(*args)

        setattr(self, name, every)  # looked up once per name
        return every


# The protocol's names before 0.3, new name -> old name.
_RENAMED = {"tokens_streamed": "generation_tokens", "producer_finished": "generation_finished"}


def _renamed_list() -> str:
    return ", ".join(f"{old} -> {new}" for new, old in _RENAMED.items())


class _OldNames:
    """A 0.2 sink under the 0.3 names."""

    def __init__(self, sink: Any) -> None:
        self._sink = sink

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sink, _RENAMED.get(name, name))


# -- traces ---------------------------------------------------------------------------------------


class StreamTrace(Protocol):
    """One response's trace: begun when the view decides to stream, ended once with the response's summary."""

    # W3C traceparent of this response's span, kept in the stream's start event (so a reader on any
    # worker can link to it); None when nothing is traced.
    traceparent: str | None

    def producing(self) -> AbstractContextManager[Any]:
        """Entered by the producer's greenlet around the whole stream: the span is its current context there."""
        ...

    def handlers(self) -> list[Any]:
        """LangChain callback handlers that record the model calls, tool calls and graph steps as child spans."""
        ...

    def finished(self, summary: Mapping[str, Any]) -> None:
        """The response ended (its summary: outcome, ttft_ms, tokens...); called once."""
        ...


class StreamTracer(Protocol):
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
        """A trace for a response: ``kind`` is ``stream`` (a new stream) or ``resume`` (``origin``: its traceparent)."""
        ...


class _NoTrace:
    traceparent: str | None = None

    def producing(self) -> AbstractContextManager[Any]:
        return nullcontext()

    def handlers(self) -> list[Any]:
        return []

    def finished(self, summary: Mapping[str, Any]) -> None:
        pass


NO_TRACE = _NoTrace()


class NoTracer:
    """Traces nothing (the default)."""

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
        return NO_TRACE


_tracer: StreamTracer = NoTracer()


def tracer() -> StreamTracer:
    return _tracer


def tracing() -> bool:
    """Whether a tracer is installed (a resume then looks up its stream's trace)."""
    return not isinstance(_tracer, NoTracer)


def otel_switch(value: Any, where: str) -> None:
    """``UNCUT_OTEL`` (Flask's app.config) / ``settings.UNCUT["OTEL"]`` (Django): true installs ``uncut.otel``.

    It uses OpenTelemetry's global providers (set them up, or run under
    ``opentelemetry-instrument``); OpenTelemetry is imported only here, and
    only when switched on.
    """
    if value is None:
        return
    try:
        wanted = parse_bool(value)
    except ValueError as exc:
        raise ValueError(f"{where}={value!r}: {exc}") from None
    if not wanted:
        return
    try:
        from uncut.otel import install
    except ImportError as exc:
        raise ValueError(f"{where}: OpenTelemetry is not installed: pip install 'uncut[otel]' ({exc})") from None
    install()


def use_tracer(new: StreamTracer) -> None:
    """Trace every response with ``new`` from now on, in this process (``NoTracer()`` to stop)."""
    global _tracer
    _tracer = new
