"""Where streams report what happened: nowhere by default, Prometheus with ``uncut.prometheus.install()``.

The core calls ``metrics()`` at a few points only (a stream started,
refused, resumed or finished; a run's first token, its tokens in batches,
its longest gap) so that it imports no metrics library. Any object with
these methods can be installed with ``use_metrics``.
"""

from __future__ import annotations

from typing import Protocol

from uncut.errors import OUTCOMES as _OUTCOMES

__all__ = ["NoMetrics", "OUTCOMES", "StreamMetrics", "metrics", "use_metrics"]

# How a streamed response can end (its summary's "outcome"), and "rejected" for one never admitted: uncut.errors.OUTCOMES
# but for "abandoned", a run's own outcome (Generation.outcome), whose readers' responses end "cancelled".
OUTCOMES = tuple(outcome for outcome in _OUTCOMES if outcome != "abandoned")


class StreamMetrics(Protocol):
    def stream_started(self, surface: str) -> None: ...
    def stream_finished(self, surface: str, outcome: str) -> None: ...
    def stream_rejected(self, surface: str) -> None: ...
    def stream_resumed(self) -> None: ...
    def heartbeats_sent(self, count: int) -> None: ...
    def first_token(self, ttft: float) -> None: ...
    def generation_tokens(self, count: int) -> None: ...
    def generation_finished(self, max_gap: float | None) -> None: ...


class NoMetrics:
    """Counts nothing."""

    def stream_started(self, surface: str) -> None: ...
    def stream_finished(self, surface: str, outcome: str) -> None: ...
    def stream_rejected(self, surface: str) -> None: ...
    def stream_resumed(self) -> None: ...
    def heartbeats_sent(self, count: int) -> None: ...
    def first_token(self, ttft: float) -> None: ...
    def generation_tokens(self, count: int) -> None: ...
    def generation_finished(self, max_gap: float | None) -> None: ...


_current: StreamMetrics = NoMetrics()


def metrics() -> StreamMetrics:
    return _current


def use_metrics(sink: StreamMetrics) -> None:
    """Report to ``sink`` from now on, in this process."""
    global _current
    _current = sink
