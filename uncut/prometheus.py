"""Prometheus metrics for streams, correct across gunicorn workers (``pip install "uncut[metrics]"``).

``install()`` makes the core report here (``uncut.telemetry``); ``exposition()``
is what ``/metrics`` answers.

With ``PROMETHEUS_MULTIPROC_DIR`` set (conf/gunicorn.conf.py sets it up and
cleans it), every worker writes its samples to files there and ``/metrics``
aggregates them, so a scrape that reaches any one worker sees them all;
without it (the dev server, tests) the in-process registry is used. The
metric objects exist once per process, whatever the number of apps.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

from uncut.telemetry import OUTCOMES, use_metrics

__all__ = ["OUTCOMES", "PrometheusMetrics", "exposition", "install", "mark_worker_dead"]
_GAP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)


class PrometheusMetrics:
    """The stream counters, gauges and histograms, named and described in one place."""

    def __init__(self, prefix: str = "uncut") -> None:
        self.started = Counter(f"{prefix}_streams_started", "Streams requested, admitted or not.", ["surface"])
        self.finished = Counter(f"{prefix}_streams_finished", "Streams ended, by outcome.", ["surface", "outcome"])
        self.active = Gauge(f"{prefix}_streams_active", "Streams open now.", ["surface"], multiprocess_mode="livesum")
        self.ttft = Histogram(
            f"{prefix}_time_to_first_token_seconds", "From the start of a stream to its first token.", buckets=_TTFT_BUCKETS
        )
        self.max_gap = Histogram(
            f"{prefix}_max_token_gap_seconds", "The longest silence between two tokens, per producer.", buckets=_GAP_BUCKETS
        )
        self.tokens = Counter(f"{prefix}_tokens", "Tokens generated.")
        self.heartbeats = Counter(f"{prefix}_heartbeats", "Heartbeats sent.")
        self.resumes = Counter(f"{prefix}_resumes", "Streams resumed with Last-Event-ID.")

    def stream_started(self, surface: str) -> None:
        self.started.labels(surface).inc()
        self.active.labels(surface).inc()

    def stream_finished(self, surface: str, outcome: str) -> None:
        self.active.labels(surface).dec()
        self.finished.labels(surface, outcome).inc()

    def stream_rejected(self, surface: str) -> None:
        self.started.labels(surface).inc()
        self.finished.labels(surface, "rejected").inc()

    def stream_resumed(self) -> None:
        self.resumes.inc()

    def heartbeats_sent(self, count: int) -> None:
        if count:
            self.heartbeats.inc(count)

    def first_token(self, ttft: float) -> None:
        self.ttft.observe(ttft)

    def tokens_streamed(self, count: int) -> None:
        """Tokens counted in batches: a multiprocess sample costs a locked file write, too dear per token."""
        if count:
            self.tokens.inc(count)

    def producer_finished(self, max_gap: float | None) -> None:
        if max_gap is not None:
            self.max_gap.observe(max_gap)


@lru_cache(maxsize=1)
def install(prefix: str = "uncut") -> PrometheusMetrics:
    """Report streams to Prometheus in this process, as ``<prefix>_streams_started`` and so on.

    Once per process: the registry refuses a metric name twice, so later
    calls return the same metrics whatever prefix they name.
    """
    sink = PrometheusMetrics(prefix)
    use_metrics(sink)
    return sink


def exposition() -> tuple[bytes, str]:
    """The text a scrape gets: every worker's samples when in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def mark_worker_dead(pid: int) -> Any:
    """gunicorn ``child_exit`` hook: drop a dead worker's live gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated
