"""Budgets belong to runs, and no text from a model can break a stream.

A run ends with an explicit error at its deadline, however its readers
come and go, and when its log grows past its bounds; the relay checks the
deadline on every pass, so a reader that is always behind stops too. A
model that splits an emoji across chunks streams it whole; lone surrogates
become U+FFFD; an event that cannot be framed ends the stream with
``server_error`` instead of cutting it (and every resume) silently.
"""

from __future__ import annotations

import time
from typing import Any, Iterator

from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessageChunk
from langchain_core.runnables import RunnableGenerator

from uncut import sse
from uncut.eventlog import Event, MemoryEventLog, MemoryStore
from uncut.events import StreamEvents, clean_text
from uncut.options import StreamOptions
from uncut.producer import Producer, StreamBudget
from uncut.relay import Relay


def chunks_of(texts: list[str], interval: float = 0.0) -> RunnableGenerator:
    def generate(_: Iterator[Any]) -> Iterator[AIMessageChunk]:
        for text in texts:
            if interval:
                time.sleep(interval)
            yield AIMessageChunk(content=text)

    return RunnableGenerator(generate)


def sse_events(relay: Relay) -> list[sse.ServerSentEvent]:
    return [e for e in sse.parse_stream(relay.sse_frames()) if isinstance(e, sse.ServerSentEvent)]


def run(
    texts: list[str],
    budget: StreamBudget = StreamBudget(),
    interval: float = 0.0,
    options: StreamOptions | None = None,
    summaries: list[dict[str, Any]] | None = None,
) -> list[sse.ServerSentEvent]:
    producer = Producer(chunks_of(texts, interval), None, MemoryEventLog("s"), budget=budget)
    on_finish = summaries.append if summaries is not None else None
    return sse_events(Relay(producer.log, options or StreamOptions(heartbeat_seconds=0), producer=producer, on_finish=on_finish))


def text_of(events: list[sse.ServerSentEvent]) -> str:
    return "".join(e.json()["text"] for e in events if e.event == "token")


def test_an_emoji_split_across_two_chunks_arrives_whole() -> None:
    events = run(["smile ", "\ud83d", "\ude00", " done"])
    assert text_of(events) == "smile \U0001f600 done" and events[-1].event == "end"


def test_lone_surrogates_become_replacement_characters_and_the_stream_ends() -> None:
    summaries: list[dict[str, Any]] = []
    events = run(["a\udc00b", "tail \ud800"], summaries=summaries)
    assert text_of(events) == "a\ufffdbtail \ufffd" and events[-1].event == "end"
    assert summaries[0]["outcome"] == "completed"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=8), max_size=12))
def test_any_text_a_model_streams_is_framed_and_ends_cleanly(texts: list[str]) -> None:
    events = run(texts)
    assert events[-1].event == "end"
    assert text_of(events).encode("utf-8") == clean_text("".join(texts)).encode("utf-8")


def test_an_event_that_cannot_be_framed_ends_the_stream_with_server_error() -> None:
    summaries: list[dict[str, Any]] = []
    producer = Producer(chunks_of(["a", "b", "c"], 0.05), None, MemoryEventLog("s"))
    relay = Relay(producer.log, StreamOptions(heartbeat_seconds=0), producer=producer, on_finish=summaries.append)

    def frame(event: Event) -> bytes:
        if event.kind == "token" and event.data["text"] == "b":
            raise ValueError("cannot frame")
        return relay._sse_frame(event)

    events = [e for e in sse.parse_stream(relay.frames(frame)) if isinstance(e, sse.ServerSentEvent)]
    assert [e.event for e in events] == ["start", "token", "error"]
    assert events[-1].json()["error"]["type"] == "server_error"
    assert summaries[0]["outcome"] == "server_error"


def test_a_run_past_its_deadline_ends_with_timeout_even_with_no_reader() -> None:
    log = MemoryEventLog("s")
    producer = Producer(chunks_of(["x"] * 100, 0.02), None, log, budget=StreamBudget(max_seconds=0.3)).start()
    producer.join(5)
    assert log.finished and log.last().data["error"]["type"] == "timeout"  # type: ignore[union-attr]
    assert producer.outcome == "timeout" and log.count() < 30


def test_a_reconnecting_reader_cannot_extend_the_runs_deadline() -> None:
    log = MemoryEventLog("s")
    producer = Producer(chunks_of(["x"] * 100, 0.02), None, log, budget=StreamBudget(max_seconds=0.5), on_disconnect="continue")
    started = time.monotonic()
    after = -1
    for _ in range(20):  # a reader that reconnects every 0.2 s, as a fresh connection each time
        relay = Relay(log, StreamOptions(heartbeat_seconds=0, max_stream_seconds=5), producer=producer, after=after, resumable=True)
        frames = relay.sse_frames()
        ended_at = time.monotonic() + 0.2
        for frame in frames:
            for event in sse.parse_stream([frame]):
                if isinstance(event, sse.ServerSentEvent) and event.id:
                    after = int(event.id.split(":")[1])
            if time.monotonic() > ended_at or log.finished:
                break
        frames.close()
        if log.finished:
            break
    assert log.last().data["error"]["type"] == "timeout"  # type: ignore[union-attr]
    assert time.monotonic() - started < 1.5


def test_a_reader_that_is_always_behind_still_meets_the_deadline() -> None:
    log = MemoryEventLog("s")
    for _ in range(5000):  # a backlog the reader will never catch up with
        log.append("token", {"text": "x"})
    log.deadline = time.monotonic() + 0.2
    relay = Relay(log, StreamOptions(heartbeat_seconds=1), after=0)
    started = time.monotonic()
    for frame in relay.sse_frames():
        time.sleep(0.01)  # a slow client: each write takes a while, and new events are always waiting
    assert log.last().data["error"]["type"] == "timeout"  # type: ignore[union-attr]
    assert time.monotonic() - started < 2.0 and relay.outcome == "timeout"


def test_a_run_whose_log_grows_past_its_bounds_ends_too_large() -> None:
    by_events = run(["x"] * 200, budget=StreamBudget(max_events=50))
    assert by_events[-1].json()["error"]["type"] == "too_large" and len(by_events) <= 51
    by_bytes = run(["y" * 1000] * 200, budget=StreamBudget(max_bytes=20_000))
    assert by_bytes[-1].json()["error"]["type"] == "too_large" and len(text_of(by_bytes)) < 25_000


def test_the_memory_store_is_bounded_by_bytes() -> None:
    store = MemoryStore(ttl_seconds=300, max_events=10**6, max_bytes=50_000)
    for index in range(20):
        log = store.create(f"s{index}")
        log.append("token", {"text": "z" * 10_000})
        log.finish("end", {})
        store._last_sweep = 0  # sweep on the next call, not a second later
        store.open("s0")
    kept = [f"s{i}" for i in range(20) if store.open(f"s{i}") is not None]
    assert 3 <= len(kept) <= 5 and kept[-1] == "s19"  # the oldest finished went first


def test_stream_events_hold_half_a_pair_only_until_the_next_text() -> None:
    emitted: list[tuple[str, dict[str, Any]]] = []
    events = StreamEvents(lambda kind, data: emitted.append((kind, data)))
    events.feed(AIMessageChunk(content="\ud83d"))
    assert emitted == []
    events.feed(AIMessageChunk(content="\ude00!"))
    events.close()
    assert emitted == [("token", {"text": "\U0001f600!"})]
