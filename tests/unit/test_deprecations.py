"""The names renamed in 0.3 still work until 0.4, each with a DeprecationWarning that names its successor."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from uncut import ScriptedChatModel, Streams
from uncut.telemetry import metrics, use_metrics


def test_streams_run_is_streams_stream_with_a_warning() -> None:
    streams = Streams()
    with pytest.warns(DeprecationWarning, match=r"Streams\.run is deprecated .* use Streams\.stream"):
        relay = streams.run(ScriptedChatModel(tokens=3, ttft=0, interval=0), "hi")
    seen: list[str] = []
    Streams.collect(relay, lambda event: seen.append(event.kind) or b"")
    assert seen[0] == "start" and seen.count("token") == 3 and seen[-1] == "end"


@pytest.mark.parametrize(("old", "new"), [("run_thread", "stream_thread"), ("run_chat_thread", "stream_chat_thread")])
def test_the_thread_names_forward_every_argument(old: str, new: str, monkeypatch: pytest.MonkeyPatch) -> None:
    streams = Streams()
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(streams, new, lambda *args, **kwargs: calls.append((args, kwargs)) or "relay")
    with pytest.warns(DeprecationWarning, match=f"Streams.{old} is deprecated .* use Streams.{new}"):
        assert getattr(streams, old)("graph", "thread", surface="ui") == "relay"
    assert calls == [(("graph", "thread"), {"surface": "ui"})]


class OldSink:
    """A metrics sink written for 0.2."""

    def __init__(self) -> None:
        self.tokens = 0
        self.gaps: list[float | None] = []

    def stream_started(self, surface: str) -> None: ...
    def stream_finished(self, surface: str, outcome: str) -> None: ...
    def stream_rejected(self, surface: str) -> None: ...
    def stream_resumed(self) -> None: ...
    def heartbeats_sent(self, count: int) -> None: ...
    def first_token(self, ttft: float) -> None: ...

    def generation_tokens(self, count: int) -> None:
        self.tokens += count

    def generation_finished(self, max_gap: float | None) -> None:
        self.gaps.append(max_gap)


def test_a_sink_with_the_old_method_names_still_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    before = metrics()
    sink = OldSink()
    try:
        with pytest.warns(DeprecationWarning, match="generation_tokens -> tokens_streamed"):
            use_metrics(sink)  # type: ignore[arg-type]
        metrics().tokens_streamed(4)
        metrics().producer_finished(0.5)
        metrics().stream_resumed()
    finally:
        use_metrics(before)
    assert sink.tokens == 4 and sink.gaps == [0.5]


def test_a_sink_with_the_new_names_is_used_as_it_is() -> None:
    before = metrics()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        use_metrics(before)
    assert metrics() is before
