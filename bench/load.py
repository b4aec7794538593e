"""The load generator: ``python -m bench.load --url ... --concurrency C`` prints one JSON summary.

It runs in its own process so its CPU never counts against the app. To
stay cheap at thousands of streams it is a bare asyncio protocol on uvloop
with httptools parsing the responses (chunked decoding in C): a chunk costs
a few microseconds, where aiohttp or httpx cost several times that, which
on a 2-core machine would be taken from the apps being measured.

Two shapes of load:
- closed loop (``--duration``): C users, each sending its next request as
  soon as its stream ends, for D seconds; the measure of steady throughput,
  and of how new streams are admitted while others run.
- burst (``--burst``): C streams started together (optionally spread over
  ``--ramp`` seconds), one each; for the scale and cold-start scenarios.
- open loop (``--rate R --duration D``): one stream per arrival, arrivals
  a Poisson process of R per second for D seconds (seeded), whatever the
  app's state: the load a public endpoint sees, where a slow server does
  not slow its callers down. ``--burst`` is the open loop's other shape.

Each record keeps its first byte (headers or body, whatever came first),
so an app that answers at once, served or refused (``503``), is told apart
from one that keeps its callers waiting.

Every chunk is timestamped on arrival; each token is counted (text: one
"w" per token; SSE: ``event: token`` frames; OpenAI: chunks with content)
and the whole answer is checked against the expected text.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

import httptools

from bench.upstream import answer_text, raise_fd_limit

now = time.perf_counter


@dataclass
class StreamRecord:
    """One request: when it started, when each token arrived, how it ended."""

    started: float
    first_byte: float | None = None  # the first bytes of the response, served or refused
    status: int | None = None
    token_times: list[float] = field(default_factory=list)
    complete: bool = False  # the HTTP message ended properly (chunked terminator)
    ended: bool = False  # the body said it ended (SSE `end`, OpenAI `[DONE]`; text: the terminator)
    error: str | None = None
    finished: float | None = None
    text_ok: bool = False
    user: int = 0  # the virtual user that sent it: a retry is the same user's next attempt
    attempt: int = 0
    retry_after: float | None = None  # seconds, from retry-after-ms or Retry-After

    @property
    def tokens(self) -> int:
        return len(self.token_times)


class Sink:
    """Turns a response body into token timestamps and a verdict (one subclass per response format)."""

    def __init__(self, record: StreamRecord) -> None:
        self.record = record

    def feed(self, data: bytes, at: float) -> None:
        raise NotImplementedError

    def close(self, expected: str) -> None:
        raise NotImplementedError


class TextSink(Sink):
    """text/plain: the answer itself; every token carries exactly one "w"."""

    def __init__(self, record: StreamRecord) -> None:
        super().__init__(record)
        self.parts: list[bytes] = []

    def feed(self, data: bytes, at: float) -> None:
        self.parts.append(data)
        self.record.token_times.extend([at] * data.count(b"w"))

    def close(self, expected: str) -> None:
        self.record.ended = self.record.complete
        self.record.text_ok = b"".join(self.parts).decode("utf-8", "replace") == expected


class FrameSink(Sink):
    """Event streams: frames end with a blank line and may be split across reads."""

    def __init__(self, record: StreamRecord) -> None:
        super().__init__(record)
        self.buffer = b""
        self.texts: list[str] = []

    def feed(self, data: bytes, at: float) -> None:
        self.buffer += data
        if b"\n\n" not in self.buffer:
            return
        *frames, self.buffer = self.buffer.split(b"\n\n")
        for frame in frames:
            self.frame(frame, at)

    def frame(self, frame: bytes, at: float) -> None:
        raise NotImplementedError

    def close(self, expected: str) -> None:
        self.record.text_ok = "".join(self.texts) == expected


class SseSink(FrameSink):
    """This service's SSE: ``event: token`` with data {"text": ...}, then ``event: end`` (or ``error``)."""

    def frame(self, frame: bytes, at: float) -> None:
        event = data = None
        for line in frame.split(b"\n"):
            if line.startswith(b"event:"):
                event = line[6:].strip()
            elif line.startswith(b"data:"):
                data = line[5:].strip()
        if event == b"token" and data is not None:
            self.texts.append(json.loads(data)["text"])
            self.record.token_times.append(at)
        elif event == b"end":
            self.record.ended = True
        elif event == b"error":
            self.record.error = "error_event"


class OpenAISink(FrameSink):
    """OpenAI chunks (the upstream itself): ``data: {...}`` with delta content, then ``data: [DONE]``."""

    def frame(self, frame: bytes, at: float) -> None:
        if not frame.startswith(b"data:"):
            return
        data = frame[5:].strip()
        if data == b"[DONE]":
            self.record.ended = True
            return
        choices = json.loads(data).get("choices") or []
        content = choices[0].get("delta", {}).get("content") if choices else None
        if content:
            self.texts.append(content)
            self.record.token_times.append(at)


SINKS: dict[str, Callable[[StreamRecord], Sink]] = {"text": TextSink, "sse": SseSink, "openai": OpenAISink}


class Client(asyncio.Protocol):
    """One keep-alive connection that carries one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.parser: httptools.HttpResponseParser | None = None
        self.sink: Sink | None = None
        self.record: StreamRecord | None = None
        self.done: asyncio.Future[None] | None = None
        self.keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, request: bytes, record: StreamRecord, sink: Sink) -> asyncio.Future[None]:
        self.record, self.sink = record, sink
        self.parser = httptools.HttpResponseParser(self)
        self.done = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(request)
        return self.done

    def data_received(self, data: bytes) -> None:
        self._at = now()
        if self.parser is None:
            return
        if self.record is not None and self.record.first_byte is None:
            self.record.first_byte = self._at
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail("bad_http")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.record is None:
            return
        lowered = name.lower()
        if lowered == b"retry-after-ms" or (lowered == b"retry-after" and self.record.retry_after is None):
            try:
                self.record.retry_after = float(value) / (1000 if lowered == b"retry-after-ms" else 1)
            except ValueError:
                pass

    def on_headers_complete(self) -> None:
        assert self.record is not None and self.parser is not None
        self.record.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        if self.sink is not None:
            self.sink.feed(body, self._at)

    def on_message_complete(self) -> None:
        if self.record is not None:
            self.record.complete = True
        self._resolve()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail("truncated")

    def _fail(self, reason: str) -> None:
        if self.record is not None and self.record.error is None and not self.record.complete:
            self.record.error = reason
        self._resolve()
        if self.transport is not None and not self.closed:
            self.transport.close()

    def _resolve(self) -> None:
        if self.record is not None:
            self.record.finished = now()
        self.parser = None
        self.sink = None
        self.record = None
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()


@dataclass
class Plan:
    """What to send and what to expect back."""

    host: str
    port: int
    path: str
    mode: str
    expected_tokens: int
    stream_timeout: float
    message: str = "bench"

    def request(self, retry_count: int | None = None) -> bytes:
        """The request; with ``retry_count``, the header the openai SDKs send on every attempt (0 on the first)."""
        if self.mode == "openai":  # straight at the upstream
            payload: dict[str, Any] = {"model": "bench-model", "stream": True, "messages": [{"role": "user", "content": self.message}]}
        else:
            payload = {"message": self.message}
        body = json.dumps(payload).encode()
        retry = "" if retry_count is None else f"x-stainless-retry-count: {retry_count}\r\n"
        return (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
            f"Accept: */*\r\n{retry}Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body


# How the openai SDKs retry (openai-python's _base_client): a server-named delay is honoured when it is
# 0 < delay <= 120 s (Node: 60 s); otherwise 0.5 s doubling per retry, at most 8 s, less a random quarter.
SDK_MAX_RETRY_AFTER = 60.0
SDK_INITIAL_DELAY, SDK_MAX_DELAY = 0.5, 8.0


def sdk_retry_delay(record: StreamRecord, retries_taken: int, rng: random.Random) -> float:
    if record.retry_after is not None and 0 < record.retry_after <= SDK_MAX_RETRY_AFTER:
        return record.retry_after
    return min(SDK_INITIAL_DELAY * 2.0**retries_taken, SDK_MAX_DELAY) * (1 - 0.25 * rng.random())


def sdk_would_retry(record: StreamRecord) -> bool:
    """Refusals, server errors and connections that never answered, as the SDKs retry them."""
    if record.status is None:
        return record.first_byte is None
    return record.status in REFUSALS or record.status in (408, 409) or record.status >= 500


class Load:
    """Runs the users and collects their records."""

    def __init__(self, plan: Plan, max_retries: int = 0, seed: int = 1, new_connections: bool = False) -> None:
        self.plan = plan
        self.new_connections = new_connections
        self.max_retries = max_retries
        self.requests = [plan.request(n if max_retries else None) for n in range(max_retries + 1)]
        self.rng = random.Random(seed)
        self.expected = answer_text(plan.expected_tokens)
        self.records: list[StreamRecord] = []
        self.last_by_user: dict[int, StreamRecord] = {}
        self.in_flight = 0
        self.connect_errors = 0

    async def one(self, client: Client | None, user: int = 0, attempt: int = 0) -> Client | None:
        """One request on ``client`` (or a new connection); returns the connection if it can be reused."""
        loop = asyncio.get_running_loop()
        record = StreamRecord(started=now(), user=user, attempt=attempt)
        self.records.append(record)
        self.last_by_user[user] = record
        self.in_flight += 1
        try:
            if client is None or client.closed:
                try:
                    _, client = await asyncio.wait_for(
                        loop.create_connection(Client, self.plan.host, self.plan.port), timeout=self.plan.stream_timeout
                    )
                except (OSError, asyncio.TimeoutError) as exc:
                    record.error = f"connect:{type(exc).__name__}"
                    self.connect_errors += 1
                    await asyncio.sleep(0.05)
                    return None
            sink = SINKS[self.plan.mode](record)
            try:
                await asyncio.wait_for(client.send(self.requests[attempt], record, sink), timeout=self.plan.stream_timeout)
            except asyncio.TimeoutError:
                record.error = record.error or "timeout"
                client.close()
                return None
            sink.close(self.expected)
            if record.status in REFUSALS:
                record.error = "refused"  # an answer, not a failure: counted apart
            elif record.status is not None and record.status != 200:
                record.error = record.error or f"status_{record.status}"
            elif record.error is None and not (record.complete and record.ended):
                record.error = "truncated"
            elif record.error is None and (record.tokens != self.plan.expected_tokens or not record.text_ok):
                record.error = "missing_tokens"
            reusable = record.complete and record.error in (None, "refused") and not self.new_connections
            if client.keep_alive and not client.closed and reusable:
                return client  # reused, as an SDK's connection pool would (a refusal is a whole response)
            client.close()  # not left open for the server to hold
            return None
        except asyncio.CancelledError:
            record.error = record.error or "cancelled"
            if client is not None:
                client.close()
            raise
        finally:
            self.in_flight -= 1
            if record.finished is None:
                record.finished = now()

    async def user(self, start_at: float, stop_at: float | None, user: int = 0) -> None:
        """One virtual user: wait for its start, then one request (burst) or requests until ``stop_at``.

        With ``max_retries``, a refused or failed request is sent again after
        the delay the openai SDKs would wait, up to that many times.
        """
        delay = start_at - now()
        if delay > 0:
            await asyncio.sleep(delay)
        client: Client | None = None
        try:
            while True:
                for attempt in range(self.max_retries + 1):
                    client = await self.one(client, user, attempt)
                    record = self.records_by_user_last(user)
                    if attempt == self.max_retries or not sdk_would_retry(record):
                        break
                    await asyncio.sleep(sdk_retry_delay(record, attempt, self.rng))
                if stop_at is None or now() >= stop_at:
                    break
        finally:
            if client is not None:
                client.close()

    def records_by_user_last(self, user: int) -> StreamRecord:
        """The user's latest record (a user has one request in flight at a time)."""
        return self.last_by_user[user]


class RssSampler:
    """Samples the app worker's RSS with the number of streams in flight, to price one open stream."""

    def __init__(self, pid: int | None, load: Load, period: float = 0.1) -> None:
        self.load = load
        self.period = period
        self.process = None
        if pid:
            import psutil

            self.process = psutil.Process(pid)
        self.idle = self.rss()
        self.best: tuple[int, int] = (0, 0)  # (streams in flight, rss) at the fullest moment seen

    def rss(self) -> int | None:
        if self.process is None:
            return None
        try:
            return int(self.process.memory_info().rss)
        except Exception:  # noqa: BLE001 - a worker that died shows up in the errors
            return None

    async def run(self) -> None:
        while True:
            rss = self.rss()
            if rss is not None:
                self.best = max(self.best, (self.load.in_flight, rss))
            await asyncio.sleep(self.period)


REFUSALS = (503, 429)


def open_loop_summary(records: list[StreamRecord], t0: float) -> dict[str, Any]:
    """What an open loop is judged by: first bytes for everyone, then what the admitted streams got.

    A request that never got a byte counts with the time it waited, so a
    silent queue cannot hide in the percentiles.
    """
    waits = [(r.first_byte if r.first_byte is not None else (r.finished or now())) - r.started for r in records]
    admitted = [r for r in records if r.status == 200]
    ttfts = [r.token_times[0] - r.started for r in admitted if r.token_times]
    completed = [r for r in admitted if not r.error]
    tokens = sum(r.tokens for r in completed)
    last = max((r.finished or t0 for r in admitted), default=t0)
    gaps = [b - a for r in admitted for a, b in zip(r.token_times, r.token_times[1:])]
    refused = sum(1 for r in records if r.error == "refused")
    return {
        "requests": len(records),
        "first_byte_p50_ms": _ms(percentile(waits, 50)),
        "first_byte_p99_ms": _ms(percentile(waits, 99)),
        "first_byte_max_ms": _ms(max(waits) if waits else None),
        "refused": refused,
        "refused_share": round(refused / max(1, len(records)), 4),
        "admitted": len(admitted),
        "admitted_failed": sum(1 for r in admitted if r.error),
        "ttft_admitted_p50_ms": _ms(percentile(ttfts, 50)),
        "ttft_admitted_p99_ms": _ms(percentile(ttfts, 99)),
        "gap_admitted_p99_ms": _ms(percentile(gaps, 99)),
        "goodput_tokens_per_s": round(tokens / max(1e-9, last - t0), 1),
        "last_admitted_finished_s": round(last - t0, 3),
    }


def answered_summary(records: list[StreamRecord]) -> dict[str, Any]:
    """What retrying users got: answered or not in the end, and the time from their first attempt to the whole answer.

    A user refused on every attempt counts against the app as much as one
    whose stream failed: either way nobody got an answer.
    """
    by_user: dict[int, list[StreamRecord]] = {}
    for record in records:
        by_user.setdefault(record.user, []).append(record)
    answered, refused_for_good, failed, times = 0, 0, 0, []
    for attempts in by_user.values():
        attempts.sort(key=lambda r: r.attempt)
        last = attempts[-1]
        if last.error is None:
            answered += 1
            times.append((last.finished or now()) - attempts[0].started)
        elif last.error == "refused":
            refused_for_good += 1
        else:
            failed += 1
    users = len(by_user)
    return {
        "users": users,
        "answered": answered,
        "answered_share": round(answered / max(1, users), 4),
        "refused_for_good": refused_for_good,
        "failed": failed,
        "retries": len(records) - users,
        "answer_p50_ms": _ms(percentile(times, 50)),
        "answer_p99_ms": _ms(percentile(times, 99)),
    }


def arrivals(rate: float, duration: float, seed: int) -> list[float]:
    """Poisson arrival times (seconds from the start) of ``rate`` per second over ``duration``."""
    rng = random.Random(seed)
    times, at = [], rng.expovariate(rate)
    while at < duration:
        times.append(at)
        at += rng.expovariate(rate)
    return times


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def summarize(load: Load, t0: float, window_end: float | None, interval: float, sampler: RssSampler, wall: float) -> dict[str, Any]:
    """Tokens/s, TTFT and gap percentiles, errors by kind, RSS per open stream.

    tokens/s is every token received divided by the time from the first
    request to the last token. A closed loop thus counts its drain as well as
    its start-up: a window that cut both would, at high C, mostly measure the
    first burst (each app spends its first seconds admitting C streams at once).
    """
    records = load.records
    all_times = [t for r in records for t in r.token_times]
    last = max(all_times) if all_times else t0
    span = max(1e-9, last - t0)  # first request to last token: every stream's every token counts
    window = max(1e-9, (window_end if window_end is not None else last) - t0)
    in_window = sum(1 for t in all_times if t <= t0 + window)
    ttfts = [r.token_times[0] - r.started for r in records if r.token_times]
    gaps = [b - a for r in records for a, b in zip(r.token_times, r.token_times[1:])]
    errors: dict[str, int] = {}
    for r in records:
        if r.error:
            key = r.error.split(":")[0]
            errors[key] = errors.get(key, 0) + 1
    gap_p99 = percentile(gaps, 99)
    open_streams, rss_open = sampler.best
    idle = sampler.idle
    per_stream = None
    if idle is not None and rss_open and open_streams:
        per_stream = round((rss_open - idle) / open_streams / 1024, 2)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    token_counts = sorted({r.tokens for r in records if not r.error})
    return {
        "streams": len(records),
        "completed": sum(1 for r in records if not r.error),
        "errors": errors,
        "error_total": sum(errors.values()),
        "tokens_per_stream": token_counts,
        "tokens_total": len(all_times),
        "span_s": round(span, 3),
        "tokens_per_s": round(len(all_times) / span, 1),
        "tokens_per_s_window": round(in_window / window, 1),  # only tokens before the users stopped
        "ttft_p50_ms": _ms(percentile(ttfts, 50)),
        "ttft_p99_ms": _ms(percentile(ttfts, 99)),
        "ttft_max_ms": _ms(max(ttfts) if ttfts else None),
        "gap_p50_ms": _ms(percentile(gaps, 50)),
        "gap_p99_ms": _ms(gap_p99),
        "gap_excess_p99_ms": _ms(None if gap_p99 is None else gap_p99 - interval),
        "rss_idle_bytes": idle,
        "rss_open_bytes": rss_open or None,
        "open_streams_at_rss": open_streams,
        "rss_per_stream_kb": per_stream,
        "wall_s": round(wall, 3),
        "loadgen_cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("the load generator targets loopback only")
    plan = Plan(host, port, args.path, args.mode, args.tokens, args.stream_timeout)
    load = Load(plan, args.max_retries, args.seed, args.new_connections)
    sampler = RssSampler(args.rss_pid, load)
    sampling = asyncio.create_task(sampler.run())
    t0 = now()
    if args.rate:  # open loop: one stream per Poisson arrival
        stop_at = None
        starts = arrivals(args.rate, args.duration, args.seed)
        users = [asyncio.create_task(load.user(t0 + at, None, i)) for i, at in enumerate(starts)]
        hard_limit = args.duration + args.stream_timeout + 10
    else:
        stop_at = None if args.burst else t0 + args.duration
        users = [
            asyncio.create_task(load.user(t0 + (i * args.ramp / args.concurrency if args.ramp else 0), stop_at, i))
            for i in range(args.concurrency)
        ]
        hard_limit = (args.duration if not args.burst else args.ramp) + args.stream_timeout + 10
    hard_limit += args.max_retries * (SDK_MAX_RETRY_AFTER + args.stream_timeout)
    done, pending = await asyncio.wait(users, timeout=hard_limit)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=10)
    sampling.cancel()
    wall = now() - t0
    result = summarize(load, t0, stop_at, args.interval, sampler, wall)
    result["open_loop"] = open_loop_summary(load.records, t0)
    if args.max_retries:
        result["open_loop"].update(answered_summary(load.records))
    kind = "poisson" if args.rate else ("burst" if args.burst else "closed_loop")
    result.update(
        app=args.app,
        mode=args.mode,
        path=args.path,
        concurrency=args.concurrency,
        kind=kind,
        rate=args.rate or None,
        duration_s=args.duration if not args.burst else None,
        ramp_s=args.ramp,
        expected_tokens=args.tokens,
        interval_ms=round(args.interval * 1000, 3),
        cancelled_users=len(pending),
        connect_errors=load.connect_errors,
    )
    if args.keep_records:
        result["records"] = [
            {
                "started": r.started - t0,
                "ttft": (r.token_times[0] - r.started) if r.token_times else None,
                "first_byte": None if r.first_byte is None else r.first_byte - r.started,
                "status": r.status,
                "tokens": r.tokens,
                "error": r.error,
                "user": r.user,
                "attempt": r.attempt,
                "retry_after": r.retry_after,
                "finished": None if r.finished is None else r.finished - t0,
            }
            for r in load.records
        ]
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Open C concurrent streams against one app; print a JSON summary.")
    parser.add_argument("--url", required=True, help="http://127.0.0.1:PORT")
    parser.add_argument("--path", default="/api/chat/stream")
    parser.add_argument("--mode", choices=sorted(SINKS), default="text")
    parser.add_argument("--app", default="app", help="label for the summary")
    parser.add_argument("--concurrency", type=int, default=1, help="closed loop and burst: the number of users")
    parser.add_argument("--rate", type=float, default=0.0, help="open loop: Poisson arrivals per second, for --duration")
    parser.add_argument("--seed", type=int, default=1, help="open loop: the arrivals' seed")
    parser.add_argument("--duration", type=float, default=5.0, help="closed loop: seconds to keep C streams open")
    parser.add_argument("--burst", action="store_true", help="one stream per user instead of a closed loop")
    parser.add_argument("--ramp", type=float, default=0.0, help="spread user starts over this many seconds")
    parser.add_argument("--tokens", type=int, required=True, help="tokens each stream must deliver")
    parser.add_argument("--interval", type=float, required=True, help="the upstream's interval, seconds")
    parser.add_argument("--stream-timeout", type=float, default=60.0)
    parser.add_argument(
        "--max-retries",
        type=int,
        default=0,
        help="retry a refused or failed request this many times, as the openai SDKs do (they default to 2)",
    )
    parser.add_argument("--new-connections", action="store_true", help="a new connection for every request (no keep-alive)")
    parser.add_argument("--rss-pid", type=int, default=0, help="worker process whose RSS to sample")
    parser.add_argument("--keep-records", action="store_true", help="include every stream's record")
    parser.add_argument("--out", help="write the JSON here instead of stdout")
    args = parser.parse_args(argv)
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    raise_fd_limit()
    import uvloop

    emit_result(uvloop.run(run(args)), args.out)


def emit_result(result: dict[str, Any], out: str | None) -> None:
    """A measuring child's last act: its JSON summary to ``out`` (or stdout), then exit at once.

    ``os._exit`` skips the interpreter's teardown of thousands of closed
    transports or greenlets, which would only add seconds to the run.
    """
    text = json.dumps(result)
    if out:
        with open(out, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text + "\n")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
