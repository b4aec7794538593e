"""Where streams report what happened: nowhere by default, Prometheus with ``uncut.prometheus.install()``.

The core calls ``metrics()`` at a few points only (a stream started,
refused, resumed or finished; a run's first token, its tokens in batches,
its longest gap) so that it imports no metrics library. Any object with
these methods can be installed with ``use_metrics``.
"""

from __future__ import annotations

import warnings
from typing import Any, Protocol

from uncut.errors import OUTCOMES as _OUTCOMES

__all__ = ["NoMetrics", "OUTCOMES", "StreamMetrics", "metrics", "use_metrics"]

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


def use_metrics(sink: StreamMetrics) -> None:
    """Report to ``sink`` from now on, in this process.

    A sink written for uncut 0.2 (``generation_tokens``, ``generation_finished``)
    still works until 0.4, with a ``DeprecationWarning``.
    """
    global _current
    old_names = [old for new, old in _RENAMED.items() if not hasattr(sink, new) and hasattr(sink, old)]
    if old_names:
        warnings.warn(
            f"{type(sink).__name__}.{', .'.join(old_names)}: renamed in uncut 0.3 ({_renamed_list()}); the old names go in 0.4",
            DeprecationWarning,
            stacklevel=2,
        )
        sink = _OldNames(sink)
    _current = sink


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
