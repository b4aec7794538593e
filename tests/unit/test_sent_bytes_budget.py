"""Issue 22, finding 6 (the budget half): ``max_stream_bytes`` counts the bytes actually sent.

The run counts its log's bytes; the ``/v1`` framing repeats the chunk id
and the model with every token, so a stream of short tokens sent many times
its budget (a 0.9 MB model name made 49.5 MB out of an 8 MiB budget). The
relay now counts what it writes and ends the stream with ``too_large``
when that reaches the budget. Negative control: with the budget counted on
the log alone (the relay's own count switched off), the same stream sends
several times the budget.
"""

from __future__ import annotations

import json
import time
from typing import Any, Iterator

import pytest
from langchain_core.runnables import RunnableGenerator

from uncut.eventlog import MemoryEventLog
from uncut.openai_chunks import ChunkFormat
from uncut.options import StreamOptions
from uncut.producer import Producer, StreamBudget
from uncut.relay import Relay

BUDGET = 16_384
MODEL = "m" * 256  # the longest model a /v1 request may name


def tokens(_: Iterator[Any]) -> Iterator[str]:
    for _ in range(3_000):
        time.sleep(0.001)  # the relay keeps up: it reads the run as it goes
        yield " ab"


def stream(options: StreamOptions, *, behind: bool = False) -> tuple[bytes, Relay]:
    """The run framed as /v1 chunks; ``behind``: the reader starts once the run has ended."""
    producer = Producer(RunnableGenerator(tokens), "x", MemoryEventLog("s_bytes"), budget=StreamBudget(max_bytes=BUDGET))
    if behind:
        producer.start()
        deadline = time.monotonic() + 20
        while not producer.log.finished and time.monotonic() < deadline:
            time.sleep(0.02)
        assert producer.log.finished
    relay = Relay(producer.log, options, producer=producer)
    chunks = ChunkFormat("chatcmpl-s_bytes", MODEL, 0, include_usage=False)
    return b"".join(relay.frames(chunks.frame)), relay


def last_frame(body: bytes) -> dict[str, Any]:
    frames = [f for f in body.split(b"\n\n") if f.startswith(b"data: {")]
    return json.loads(frames[-1][6:])


@pytest.mark.parametrize("behind", [False, True], ids=["live", "reader-behind"])
def test_the_byte_budget_holds_for_the_framed_bytes(behind: bool) -> None:
    body, relay = stream(StreamOptions(heartbeat_seconds=1, max_stream_bytes=BUDGET), behind=behind)
    assert last_frame(body)["error"]["type"] == "too_large" and relay.outcome == "too_large"
    # The frame that reaches the budget is the last one before the error: what was sent stays at the budget.
    assert BUDGET <= len(body) < BUDGET + 1024, len(body)


@pytest.mark.parametrize("behind", [False, True], ids=["live", "reader-behind"])
def test_negative_control_counting_the_log_alone_sends_many_times_the_budget(behind: bool) -> None:
    body, relay = stream(StreamOptions(heartbeat_seconds=1, max_stream_bytes=None), behind=behind)
    assert last_frame(body)["error"]["type"] == "too_large"  # the run's own budget still ends it...
    assert len(body) > 5 * BUDGET, len(body)  # ...after far more bytes went out
