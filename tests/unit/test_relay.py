"""The relay with a real LangChain model in threads (the Flask dev server's mode).

Heartbeats during a pause, coalescing, end versus error, the producer closed
when the consumer closes, callbacks that raise, and the maximum duration.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Iterator

import pytest
from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.runnables import RunnableGenerator

from uncut import sse
from uncut.callbacks import AsyncCallbackError, SafeCallbackHandler, check_sync_handlers, safe_handlers
from uncut.eventlog import MemoryEventLog
from uncut.events import chunk_text
from uncut.options import StreamOptions
from uncut.producer import Producer, StreamStats, error_body
from uncut.relay import Relay, StreamAborted
from uncut.scripted import ScriptedChatModel


def relay_for(model: Any, *, options: StreamOptions | None = None, callbacks: list | None = None, summaries: list | None = None) -> Relay:
    config = {"callbacks": safe_handlers(callbacks or [])}
    producer = Producer(model, "hello", MemoryEventLog("s_test"), config=config, start_data={"model": "m"})
    on_finish = summaries.append if summaries is not None else None
    return Relay(producer.log, options or StreamOptions(heartbeat_seconds=1), producer=producer, on_finish=on_finish)


def parse(frames: list[bytes]) -> list[Any]:
    return list(sse.parse_stream(frames))


def kinds(frames: list[bytes]) -> list[str]:
    return [item.event for item in parse(frames) if isinstance(item, sse.ServerSentEvent)]


def test_first_write_carries_retry_and_start_before_any_token() -> None:
    relay = relay_for(ScriptedChatModel(tokens=3, ttft=0.3, interval=0))
    frames = relay.sse_frames()
    first = next(frames)
    assert first.startswith(b"retry: 3000\nid: s_test:0\nevent: start\n")
    assert b"token" not in first
    frames.close()


def test_heartbeats_fill_a_long_pause_and_the_stream_still_ends() -> None:
    summaries: list[dict] = []
    model = ScriptedChatModel(tokens=4, ttft=0, interval=0, pause=0.8, pause_at=2)
    frames = list(relay_for(model, options=StreamOptions(heartbeat_seconds=0.2), summaries=summaries).sse_frames())
    assert frames.count(sse.HEARTBEAT) >= 2
    assert kinds(frames) == ["start", "token", "token", "token", "token", "end"]
    # Heartbeats sit inside the pause: after the second token, before the third.
    tokens_seen = 0
    heartbeats_at = []
    for frame in frames:
        if frame == sse.HEARTBEAT:
            heartbeats_at.append(tokens_seen)
        tokens_seen += frame.count(b"event: token")
    assert set(heartbeats_at) == {2}
    assert summaries[0]["outcome"] == "completed" and summaries[0]["heartbeats"] == frames.count(sse.HEARTBEAT)


def test_negative_control_no_heartbeat_means_silence_during_the_pause() -> None:
    model = ScriptedChatModel(tokens=4, ttft=0, interval=0, pause=0.6, pause_at=2)
    frames = list(relay_for(model, options=StreamOptions(heartbeat_seconds=0)).sse_frames())
    assert sse.HEARTBEAT not in frames
    assert kinds(frames)[-1] == "end"


def test_ready_events_are_coalesced_into_one_write() -> None:
    model = ScriptedChatModel(tokens=50, ttft=0.3, interval=0)
    relay = relay_for(model)
    frames = relay.sse_frames()
    next(frames)  # retry + start
    time.sleep(0.6)  # the model finished meanwhile: everything is ready
    rest = list(frames)
    assert len(rest) == 1, "all ready events should leave in one write"
    assert kinds(rest).count("token") == 50 and kinds(rest)[-1] == "end"


def test_end_event_carries_finish_reason_token_count_and_usage() -> None:
    frames = list(relay_for(ScriptedChatModel(tokens=5, ttft=0, interval=0)).sse_frames())
    end = [i for i in parse(frames) if isinstance(i, sse.ServerSentEvent)][-1]
    data = json.loads(end.data)
    assert data["finish_reason"] == "stop" and data["tokens"] == 5
    assert data["usage"]["output_tokens"] == 5


def test_a_failing_model_ends_with_one_error_event_and_no_internals() -> None:
    summaries: list[dict] = []
    frames = list(relay_for(ScriptedChatModel(tokens=5, ttft=0, interval=0, fail_at=2), summaries=summaries).sse_frames())
    events = [i for i in parse(frames) if isinstance(i, sse.ServerSentEvent)]
    assert [e.event for e in events] == ["start", "token", "token", "error"]
    error = json.loads(events[-1].data)["error"]
    assert error == {"type": "upstream_error", "message": "The model provider failed while answering.", "retryable": True}
    assert b"ScriptedModelError" not in b"".join(frames)
    assert summaries[0]["outcome"] == "upstream_error" and summaries[0]["tokens"] == 2


def test_text_surface_raises_so_the_transfer_is_truncated() -> None:
    chunks = relay_for(ScriptedChatModel(tokens=5, ttft=0, interval=0, fail_at=3)).text_chunks()
    received = []
    with pytest.raises(StreamAborted):
        for chunk in chunks:
            received.append(chunk)
    assert b"".join(received) == b'You asked: "hello".'[: len(b"".join(received))]


def test_text_surface_is_tokens_only() -> None:
    body = b"".join(relay_for(ScriptedChatModel(tokens=3, ttft=0, interval=0)).text_chunks())
    assert body == b'You asked: "hello".'


def test_closing_the_consumer_closes_the_model_stream() -> None:
    closed = threading.Event()
    produced: list[int] = []

    def slow_words(_: Iterator[Any]) -> Iterator[str]:
        try:
            for i in range(1000):
                produced.append(i)
                yield f"w{i} "
                time.sleep(0.02)
        finally:
            closed.set()

    summaries: list[dict] = []
    relay = relay_for(RunnableGenerator(slow_words), summaries=summaries)
    frames = relay.sse_frames()
    while b"event: token" not in next(frames):
        pass
    frames.close()  # what the WSGI server does when the client has gone
    assert closed.wait(5), "the model's stream was not closed"
    count = len(produced)
    time.sleep(0.2)
    assert len(produced) == count < 1000, "the model kept producing after the client left"
    assert summaries[0]["outcome"] == "client_disconnected"


def test_a_write_of_the_last_batch_that_never_returns_is_not_completed() -> None:
    """The server closes the response while writing the batch with ``end`` in it: the client never got the end."""

    def two_words(_: Iterator[Any]) -> Iterator[str]:
        yield from ["a ", "b"]

    summaries: list[dict] = []
    relay = relay_for(RunnableGenerator(two_words), summaries=summaries)
    frames = relay.sse_frames()
    seen = b""
    while b"event: end" not in seen:
        seen += next(frames)
    frames.close()  # the write of that frame failed (a stalled client's send timeout, a reset)
    assert summaries[0]["outcome"] == "client_disconnected"

    # Control: the same stream read to its end is completed.
    summaries.clear()
    assert kinds(list(relay_for(RunnableGenerator(two_words), summaries=summaries).sse_frames()))[-1] == "end"
    assert summaries[0]["outcome"] == "completed"


def test_max_stream_seconds_ends_with_an_explicit_timeout_error() -> None:
    summaries: list[dict] = []
    model = ScriptedChatModel(tokens=100, ttft=0, interval=0.05)
    options = StreamOptions(heartbeat_seconds=1, max_stream_seconds=0.3)
    frames = list(relay_for(model, options=options, summaries=summaries).sse_frames())
    events = [i for i in parse(frames) if isinstance(i, sse.ServerSentEvent)]
    assert events[-1].event == "error" and json.loads(events[-1].data)["error"]["type"] == "timeout"
    assert 0 < events.count(events[1]) and len(events) < 100
    assert summaries[0]["outcome"] == "timeout"


class RaisingHandler(BaseCallbackHandler):
    """The article's broken callback, with raise_error on so LangChain would abort."""

    raise_error = True

    def __init__(self) -> None:
        self.calls = 0

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.calls += 1
        raise ValueError("logging failed")


def test_a_raising_callback_cannot_cut_the_stream(caplog: pytest.LogCaptureFixture) -> None:
    handler = RaisingHandler()
    frames = list(relay_for(ScriptedChatModel(tokens=6, ttft=0, interval=0), callbacks=[handler]).sse_frames())
    assert kinds(frames)[-1] == "end" and kinds(frames).count("token") == 6
    assert handler.calls >= 6
    logged = [r for r in caplog.records if "RaisingHandler.on_llm_new_token raised" in r.getMessage()]
    assert len(logged) == 1, "the failure is logged once per stream"


def test_negative_control_unwrapped_raising_callback_cuts_the_stream() -> None:
    model = ScriptedChatModel(tokens=6, ttft=0, interval=0)
    producer = Producer(model, "hello", MemoryEventLog("s"), config={"callbacks": [RaisingHandler()]})
    frames = list(Relay(producer.log, StreamOptions(heartbeat_seconds=1), producer=producer).sse_frames())
    assert kinds(frames)[-1] == "error" and kinds(frames).count("token") == 0


class AsyncHandler(AsyncCallbackHandler):
    async def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        pass


class SneakyAsyncHandler(BaseCallbackHandler):
    async def on_llm_new_token(self, token: str, **kwargs: Any) -> None:  # type: ignore[override]
        pass


@pytest.mark.parametrize("handler", [AsyncHandler(), SneakyAsyncHandler()])
def test_async_handlers_are_refused_with_a_clear_error(handler: BaseCallbackHandler) -> None:
    with pytest.raises(AsyncCallbackError, match="event loop"):
        check_sync_handlers([handler])


def test_safe_handler_forwards_ignore_flags_and_falls_back_for_chat_model_start() -> None:
    class OnlyLLMStart(BaseCallbackHandler):
        ignore_llm = False
        started = 0

        def on_llm_start(self, *args: Any, **kwargs: Any) -> None:
            type(self).started += 1

    inner = OnlyLLMStart()
    list(ScriptedChatModel(tokens=1, ttft=0, interval=0).stream("x", config={"callbacks": [SafeCallbackHandler(inner)]}))
    assert OnlyLLMStart.started == 1


@pytest.mark.parametrize(
    ("chunk", "text"),
    [("plain", "plain"), ({"text": "t"}, "t"), ({"output": {"content": "c"}}, "c"), ({"other": 1}, ""), (None, "")],
)
def test_chunk_text(chunk: Any, text: str) -> None:
    assert chunk_text(chunk) == text


@pytest.mark.parametrize(
    ("name", "status", "kind", "retryable"),
    [
        ("RateLimitError", 429, "rate_limited", True),
        ("APIConnectionError", None, "upstream_unavailable", True),
        ("APITimeoutError", None, "upstream_timeout", True),
        ("BadRequestError", 400, "upstream_rejected", False),
        ("InternalServerError", 500, "upstream_error", True),
        ("KeyError", None, "upstream_error", True),
    ],
)
def test_error_body_classifies_without_internals(name: str, status: int | None, kind: str, retryable: bool) -> None:
    exc = type(name, (Exception,), {"status_code": status})("secret internal detail")
    body = error_body(exc)["error"]
    assert (body["type"], body["retryable"]) == (kind, retryable)
    assert "secret" not in body["message"]


class CountingModel(ScriptedChatModel):
    """Counts the tokens the model actually produced."""

    produced: Any = None  # Any: pydantic keeps the caller's list instead of copying it

    def _stream(self, *args: Any, **kwargs: Any):  # type: ignore[override]
        for chunk in super()._stream(*args, **kwargs):
            if chunk.text:
                self.produced.append(chunk.text)
            yield chunk


def counting_chain(produced: list) -> Any:
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate

    model = CountingModel(tokens=200, ttft=0, interval=0.01, produced=produced)
    return ChatPromptTemplate.from_messages([("user", "{doc}")]) | model | StrOutputParser()


def test_cancelling_a_chain_stops_its_model_at_the_next_token_in_thread_mode() -> None:
    produced: list = []
    producer = Producer(counting_chain(produced), {"doc": "d"}, MemoryEventLog("s")).start()
    while len(producer.log.read_after(-1, 1)) < 4:
        pass
    producer.cancel()
    producer.join(5)
    count = len(produced)
    time.sleep(0.2)
    assert 3 <= len(produced) == count < 10, f"the model produced {len(produced)} tokens, cancelled after 3"


def test_negative_control_closing_a_chain_stream_drains_its_model() -> None:
    """Why CancelOnNextEvent exists: LangChain's sequence answers close() by reading the model to the end."""
    produced: list = []
    iterator = iter(counting_chain(produced).stream({"doc": "d"}))
    for _ in range(3):
        next(iterator)
    iterator.close()
    assert len(produced) == 200


def test_a_shutdown_notice_ends_a_long_stream_with_a_retryable_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import uncut.producer as generation_module
    import uncut.relay as relay_module
    from uncut.shutdown import ShutdownNotice

    notice = ShutdownNotice()
    monkeypatch.setattr(relay_module, "SHUTDOWN", notice)
    monkeypatch.setattr(generation_module, "SHUTDOWN", notice)
    summaries: list[dict] = []
    relay = relay_for(ScriptedChatModel(tokens=100, ttft=0, interval=0.05), summaries=summaries)
    frames = relay.sse_frames()
    next(frames)
    threading.Timer(0.2, notice.begin, args=(1.5,)).start()  # margin 1 s: the error goes out ~0.5 s after
    started = time.monotonic()
    rest = list(frames)
    events = [i for i in parse(rest) if isinstance(i, sse.ServerSentEvent)]
    assert events[-1].event == "error"
    assert json.loads(events[-1].data)["error"] == {
        "type": "server_shutdown",
        "message": "The server is restarting; retry to continue.",
        "retryable": True,
    }
    assert time.monotonic() - started < 1.5, "the error must leave before the worker's deadline"
    assert summaries[0]["outcome"] == "server_shutdown"


def test_a_stream_starting_on_a_draining_worker_gets_its_id_before_it_is_moved(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by the soak: a new stream on a draining worker (a request on a kept-alive connection) was moved
    before its start event, so the client had no id to resume with, and the run went on for nobody."""
    import uncut.relay as relay_module
    from uncut.shutdown import ShutdownNotice

    notice = ShutdownNotice()
    notice.begin(30.0)  # already draining
    monkeypatch.setattr(relay_module, "SHUTDOWN", notice)
    producer = Producer(ScriptedChatModel(tokens=5, ttft=0.2, interval=0), "hi", MemoryEventLog("s_new"), on_disconnect="continue")
    relay = Relay(producer.log, StreamOptions(heartbeat_seconds=1), producer=producer, resumable=True, move_on_shutdown=True)
    items = parse(list(relay.sse_frames()))
    events = [i for i in items if isinstance(i, sse.ServerSentEvent)]
    assert [e.event for e in events] == ["start"] and events[0].id == "s_new:0"  # the client can resume
    assert isinstance(items[-1], sse.Comment) and "reconnect with Last-Event-ID" in items[-1].text
    producer.cancel()


class _RecordedMetrics:
    def __init__(self) -> None:
        self.ttfts: list[float] = []
        self.token_batches: list[int] = []
        self.max_gaps: list[float | None] = []

    def first_token(self, ttft: float) -> None:
        self.ttfts.append(ttft)

    def tokens_streamed(self, count: int) -> None:
        self.token_batches.append(count)

    def producer_finished(self, max_gap: float | None) -> None:
        self.max_gaps.append(max_gap)


def test_metrics_count_every_token_in_batches_and_one_gap_per_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    recorded = _RecordedMetrics()
    monkeypatch.setattr("uncut.producer.metrics", lambda: recorded)
    stats = StreamStats()
    for _ in range(150):
        stats.token()
    stats.finished()
    stats.finished()  # the end path and the producer's finally both call it: reported once
    assert recorded.token_batches == [64, 64, 22]  # every token counted, without a file write per token
    assert len(recorded.ttfts) == 1 and len(recorded.max_gaps) == 1 and recorded.max_gaps[0] is not None
    assert stats.summary()["tokens"] == 150
