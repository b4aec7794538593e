"""The Agent Server load generator: ``python -m bench.agent_load --url BASE ...`` writes one JSON summary.

Each virtual user is a LangGraph client as an app would run one: its own
``httpx.AsyncClient`` (one keep-alive connection, like one SDK client per
user), and for every run it creates a thread (``POST /threads``) and then
streams a run on it (``POST /threads/{id}/runs/stream``, the body
``langgraph_sdk``'s ``client.runs.stream(thread_id, "agent", input=...,
stream_mode="messages-tuple")`` sends). Every ``messages`` event is decoded;
a run is answered when its stream ended cleanly (no ``error`` event) and the
assistant's text is exactly the expected answer, word for word.

Refusals (``503``/``429``), server errors and requests that never got a
byte are retried up to ``--max-retries`` times after the delay the openai
SDKs wait (``retry-after-ms`` / ``Retry-After`` up to 60 s, else 0.5 s
doubling, less a random quarter; ``bench.load``). ``langgraph_sdk`` itself
retries only connection errors, never a ``503``: with it, a refusal would
reach the caller as an error. No ``x-stainless-retry-count`` header is sent
(LangGraph's SDKs do not send one).

Shapes: ``closed`` (C users, each starting its next run when the last
ends, for D seconds, then draining), ``burst`` (C users, one run each, all
at once), ``sampler`` (a new single run every ``1/--rate`` seconds for D
seconds, each on its own connection whether or not the last has ended: the
separate probe run beside the load) and ``single`` (one run at a time, at
most ``--rate`` starts a second: the unloaded baseline). Every loop is
bounded: a timeout per request (``--stream-timeout``, its whole stream
included; 5 s to connect, as ``langgraph_sdk``), and a hard limit on the
whole run after which users are cancelled and counted.

With ``--rss-pid``, the server's process tree is sampled every 100 ms
together with the number of runs streaming at that moment (a 200 received,
the stream not ended: a request still waiting for its answer, or refused,
holds no run).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import ssl
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from bench.load import SDK_MAX_RETRY_AFTER, _ms, emit_result, percentile, sdk_retry_delay
from bench.upstream import raise_fd_limit

now = time.perf_counter
REFUSALS = (503, 429)
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
STREAM_HEADERS = {"Content-Type": "application/json", "Accept": "text/event-stream", "Cache-Control": "no-store"}


@dataclass
class Attempt:
    """One HTTP request of a run (thread creation or the run's stream): how it went."""

    started: float
    first_byte: float | None = None  # headers received: served or refused
    status: int | None = None
    retry_after: float | None = None
    first_text: float | None = None  # the first messages event with assistant text
    text_times: list[float] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    complete: bool = False  # the response ended properly
    error: str | None = None
    finished: float | None = None

    @property
    def waited_for_nothing(self) -> bool:
        return self.status is None and self.first_byte is None


@dataclass
class RunRecord:
    """One user's run: its thread creation, then its run's attempts; how it ended for the user."""

    user: int
    started: float
    thread: list[Attempt] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    outcome: str = "pending"  # answered, refused, timed_out, failed, thread_failed, cancelled
    finished: float | None = None

    @property
    def first_token_s(self) -> float | None:
        """From the run's first attempt to its first text token, retries and their waits included."""
        last = self.attempts[-1] if self.attempts else None
        if last is None or last.first_text is None:
            return None
        return last.first_text - self.attempts[0].started


def would_retry(attempt: Attempt) -> bool:
    """What the SDKs retry: refusals, 408/409, 5xx, and requests that never got a byte back."""
    if attempt.status is None:
        return attempt.first_byte is None and attempt.error != "timeout_streaming"
    return attempt.status in REFUSALS or attempt.status in (408, 409) or attempt.status >= 500


def retry_after_of(headers: httpx.Headers) -> float | None:
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is not None:
            try:
                return float(raw) / scale
            except ValueError:
                continue
    return None


class Frames:
    """Server-sent events out of raw chunks: CRLF (uvicorn/sse-starlette) or LF (gunicorn), split anywhere."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        self.buffer += data
        if b"\r" in self.buffer:
            self.buffer = self.buffer.replace(b"\r\n", b"\n")
        if b"\n\n" not in self.buffer:
            return []
        *frames, self.buffer = self.buffer.split(b"\n\n")
        events = []
        for frame in frames:
            event, data_lines = b"message", []
            for line in frame.split(b"\n"):
                if line.startswith(b"event:"):
                    event = line[6:].strip()
                elif line.startswith(b"data:"):
                    data_lines.append(line[5:].lstrip(b" "))
            if data_lines:
                events.append((event, b"\n".join(data_lines)))
        return events


class Load:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        url = urlsplit(args.url)
        if url.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit("the load generator targets loopback only")
        self.base = args.url.rstrip("/")
        self.expected = args.expected
        self.run_body = orjson.dumps(
            {
                "input": {"messages": [{"role": "user", "content": args.prompt}]},
                "stream_mode": "messages-tuple",
                "assistant_id": args.assistant,
            }
        )
        self.rng = random.Random(args.seed)
        self.ssl = ssl.create_default_context()  # one, shared: httpx builds one per client otherwise (milliseconds each)
        self.records: list[RunRecord] = []
        self.open_runs = 0  # runs streaming: their 200 received, their stream not ended
        self.answered = 0
        self.timeout = httpx.Timeout(args.stream_timeout, connect=min(args.stream_timeout, 5.0))

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base,
            timeout=self.timeout,
            verify=self.ssl,
            trust_env=False,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=60.0),
        )

    async def thread(self, client: httpx.AsyncClient, record: RunRecord) -> str | None:
        for retry in range(self.args.max_retries + 1):
            attempt = Attempt(started=now())
            record.thread.append(attempt)
            try:
                response = await asyncio.wait_for(client.post("/threads", content=b"{}", headers=JSON_HEADERS), self.args.stream_timeout)
                attempt.first_byte = attempt.finished = now()
                attempt.status = response.status_code
                attempt.retry_after = retry_after_of(response.headers)
                if response.status_code == 200:
                    attempt.complete = True
                    return str(response.json()["thread_id"])
                attempt.error = "refused" if response.status_code in REFUSALS else f"status_{response.status_code}"
            except asyncio.TimeoutError:
                attempt.error = "timeout"
            except (httpx.HTTPError, OSError, ValueError, KeyError) as exc:
                attempt.error = f"http:{type(exc).__name__}"
            attempt.finished = attempt.finished or now()
            if retry == self.args.max_retries or not would_retry(attempt):
                return None
            await asyncio.sleep(sdk_retry_delay(attempt, retry, self.rng))  # type: ignore[arg-type]
        return None

    async def stream(self, client: httpx.AsyncClient, thread_id: str) -> Attempt:
        attempt = Attempt(started=now())
        streaming = False
        try:
            async with asyncio.timeout(self.args.stream_timeout):
                path = f"/threads/{thread_id}/runs/stream"
                async with client.stream("POST", path, content=self.run_body, headers=STREAM_HEADERS) as response:
                    attempt.first_byte = now()
                    attempt.status = response.status_code
                    attempt.retry_after = retry_after_of(response.headers)
                    if response.status_code != 200:
                        await response.aread()
                        attempt.error = "refused" if response.status_code in REFUSALS else f"status_{response.status_code}"
                        attempt.complete = True
                        return attempt
                    frames = Frames()
                    streaming = True
                    self.open_runs += 1
                    async for data in response.aiter_raw():
                        at = now()
                        for event, payload in frames.feed(data):
                            if event == b"messages":
                                message = orjson.loads(payload)[0]
                                content = message.get("content")
                                if isinstance(content, str) and content and str(message.get("type", "")).startswith("AI"):
                                    if attempt.first_text is None:
                                        attempt.first_text = at
                                    attempt.text_times.append(at)
                                    attempt.texts.append(content)
                            elif event == b"error":
                                attempt.error = attempt.error or "error_event"
                    attempt.complete = True
        except TimeoutError:
            attempt.error = "timeout" if attempt.first_byte is None else "timeout_streaming"
        except (httpx.HTTPError, OSError, ValueError, IndexError, AttributeError) as exc:
            attempt.error = attempt.error or f"http:{type(exc).__name__}"
        finally:
            if streaming:
                self.open_runs -= 1
            attempt.finished = now()
        if attempt.error is None and ("".join(attempt.texts) != self.expected or len(attempt.texts) != self.args.tokens):
            attempt.error = "wrong_answer"
        return attempt

    async def run(self, client: httpx.AsyncClient, user: int) -> RunRecord:
        record = RunRecord(user=user, started=now())
        self.records.append(record)
        try:
            thread_id = await self.thread(client, record)
            if thread_id is None:
                last = record.thread[-1]
                record.outcome = (
                    "timed_out"
                    if last.error and last.error.startswith("timeout")
                    else ("refused" if last.error == "refused" else "thread_failed")
                )
                return record
            for retry in range(self.args.max_retries + 1):
                attempt = await self.stream(client, thread_id)
                record.attempts.append(attempt)
                if attempt.error is None:
                    record.outcome = "answered"
                    self.answered += 1
                    return record
                if retry == self.args.max_retries or not would_retry(attempt):
                    break
                await asyncio.sleep(sdk_retry_delay(attempt, retry, self.rng))  # type: ignore[arg-type]
            last = record.attempts[-1]
            record.outcome = (
                "refused" if last.error == "refused" else "timed_out" if last.error and last.error.startswith("timeout") else "failed"
            )
            return record
        except asyncio.CancelledError:
            record.outcome = "cancelled"
            raise
        finally:
            record.finished = now()

    async def sampler(self, t0: float, stop_at: float, period: float) -> None:
        """A new run every ``period`` seconds until ``stop_at``, each on a connection of its own."""

        async def one(index: int) -> None:
            client = self.client()
            try:
                await self.run(client, index)
            finally:
                await client.aclose()

        runs, index = [], 0
        while t0 + index * period < stop_at:
            await asyncio.sleep(max(0.0, t0 + index * period - now()))
            runs.append(asyncio.create_task(one(index)))
            index += 1
        try:
            await asyncio.gather(*runs)
        finally:
            for task in runs:
                task.cancel()

    async def user(self, user: int, stop_at: float | None, period: float = 0.0) -> None:
        client = self.client()
        try:
            while True:
                started = now()
                await self.run(client, user)
                if stop_at is None or now() >= stop_at:
                    return
                if period:
                    await asyncio.sleep(max(0.0, min(period - (now() - started), stop_at - now())))
                    if now() >= stop_at:
                        return
        finally:
            await client.aclose()


class RssSampler:
    """The server's process tree RSS every ``period`` seconds, with the run requests open and answered at that moment."""

    def __init__(self, pid: int, load: Load, period: float = 0.1) -> None:
        import psutil

        self.psutil = psutil
        self.root = psutil.Process(pid) if pid else None
        self.load = load
        self.period = period
        self.samples: list[tuple[float, int, int, int]] = []  # (t, open runs, answered, rss)

    def rss(self) -> int | None:
        if self.root is None:
            return None
        total = 0
        try:
            for process in [self.root, *self.root.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except self.psutil.Error:
                    pass
        except self.psutil.Error:
            return None
        return total

    async def run(self, t0: float) -> None:
        while True:
            rss = self.rss()
            if rss is not None:
                self.samples.append((now() - t0, self.load.open_runs, self.load.answered, rss))
            await asyncio.sleep(self.period)

    def summary(self, idle: int | None) -> dict[str, Any]:
        if not self.samples or idle is None:
            return {"rss_idle_bytes": idle}
        most = max(s[1] for s in self.samples)
        # The fullest moment before much work has finished: a closed loop keeps C runs open all along, but the
        # state kept for every finished run (threads, checkpoints) grows meanwhile and is not an open run's cost.
        # Among the moments with (nearly) every run open and at most 5 % of them answered, the largest RSS: the
        # runs have started and hold what they hold (just after the requests went out, a queued run holds little).
        full = [s for s in self.samples if s[1] >= 0.95 * most]
        early = [s for s in full if s[2] <= max(1, 0.05 * most)]
        at_peak = max(early, key=lambda s: s[3]) if early else min(full, key=lambda s: (s[2], s[0]))
        per_run = round((at_peak[3] - idle) / at_peak[1] / 1024, 1) if at_peak[1] else None
        return {
            "rss_idle_bytes": idle,
            "rss_max_bytes": max(s[3] for s in self.samples),
            "open_runs_max": most,
            "rss_at_peak_bytes": at_peak[3],
            "open_runs_at_peak": at_peak[1],
            "answered_before_peak": at_peak[2],
            "peak_at_s": round(at_peak[0], 2),
            "rss_per_open_run_kb": per_run,
        }


def summarize(load: Load, t0: float, stop_at: float | None, wall: float, cancelled: int) -> dict[str, Any]:
    records = load.records
    outcomes: dict[str, int] = {}
    for record in records:
        outcomes[record.outcome] = outcomes.get(record.outcome, 0) + 1
    answered = [r for r in records if r.outcome == "answered"]
    attempts = [a for r in records for a in r.attempts]
    admitted = [a for a in attempts if a.status == 200]
    errors: dict[str, int] = {}
    for attempt in attempts + [a for r in records for a in r.thread]:
        if attempt.error:
            key = attempt.error.split(":")[0]
            errors[key] = errors.get(key, 0) + 1
    last = max((r.finished or t0 for r in answered), default=t0)
    span = max(1e-9, last - t0)
    in_window = sum(1 for r in answered if stop_at is None or (r.finished or 0) <= stop_at)
    window = (stop_at - t0) if stop_at is not None else span
    ttft_admitted = [a.first_text - a.started for a in admitted if a.first_text is not None]
    first_token = [v for r in answered if (v := r.first_token_s) is not None]
    threads = [r.thread[-1].finished - r.thread[0].started for r in records if r.thread and r.thread[-1].complete and r.thread[-1].finished]
    first_bytes = [(a.first_byte if a.first_byte is not None else (a.finished or now())) - a.started for a in attempts]
    answer_times = [(r.finished or now()) - r.started for r in answered]
    gaps = [b - a for x in admitted for a, b in zip(x.text_times, x.text_times[1:])]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    refused_attempts = sum(1 for a in attempts + [a for r in records for a in r.thread] if a.error == "refused")
    users_refused_once = sum(1 for r in records if any(a.error == "refused" for a in r.attempts + r.thread))
    return {
        "runs": len(records),
        "answered": len(answered),
        "answered_share": round(len(answered) / max(1, len(records)), 4),
        "outcomes": outcomes,
        "errors": errors,
        "cancelled_users": cancelled,
        "run_attempts": len(attempts),
        "refused_attempts": refused_attempts,
        "runs_refused_at_least_once": users_refused_once,
        "retries": sum(max(0, len(r.attempts) - 1) + max(0, len(r.thread) - 1) for r in records),
        "runs_per_s": round(len(answered) / span, 2),
        "runs_per_s_window": round(in_window / max(1e-9, window), 2),
        "span_s": round(span, 3),
        "first_token_p50_ms": _ms(percentile(first_token, 50)),
        "first_token_p99_ms": _ms(percentile(first_token, 99)),
        "ttft_admitted_p50_ms": _ms(percentile(ttft_admitted, 50)),
        "ttft_admitted_p99_ms": _ms(percentile(ttft_admitted, 99)),
        "thread_create_p50_ms": _ms(percentile(threads, 50)),
        "thread_create_p99_ms": _ms(percentile(threads, 99)),
        "first_byte_p50_ms": _ms(percentile(first_bytes, 50)),
        "first_byte_p99_ms": _ms(percentile(first_bytes, 99)),
        "answer_p50_ms": _ms(percentile(answer_times, 50)),
        "answer_p99_ms": _ms(percentile(answer_times, 99)),
        "gap_p50_ms": _ms(percentile(gaps, 50)),
        "gap_p99_ms": _ms(percentile(gaps, 99)),
        "wall_s": round(wall, 3),
        "loadgen_cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    load = Load(args)
    sampler = RssSampler(args.rss_pid, load) if args.rss_pid else None
    idle = sampler.rss() if sampler else None
    t0 = now()
    sampling = asyncio.create_task(sampler.run(t0)) if sampler else None
    if args.shape == "single":
        stop_at: float | None = t0 + args.duration
        users = [asyncio.create_task(load.user(0, stop_at, period=1.0 / args.rate))]
    elif args.shape == "sampler":
        stop_at = t0 + args.duration
        users = [asyncio.create_task(load.sampler(t0, stop_at, 1.0 / args.rate))]
    elif args.shape == "closed":
        stop_at = t0 + args.duration
        users = [asyncio.create_task(load.user(i, stop_at)) for i in range(args.concurrency)]
    else:
        stop_at = None
        users = [asyncio.create_task(load.user(i, None)) for i in range(args.concurrency)]
    per_run = (args.max_retries + 1) * 2 * args.stream_timeout + args.max_retries * SDK_MAX_RETRY_AFTER
    hard_limit = (args.duration if stop_at is not None else 0.0) + min(per_run, args.hard_limit)
    _, pending = await asyncio.wait(users, timeout=hard_limit)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=10)
    wall = now() - t0
    if sampling is not None:
        sampling.cancel()
    result = summarize(load, t0, stop_at, wall, len(pending))
    if sampler is not None:
        result.update(sampler.summary(idle))
    result.update(
        shape=args.shape,
        concurrency=args.concurrency,
        duration_s=args.duration if stop_at is not None else None,
        max_retries=args.max_retries,
        label=args.label,
    )
    if args.keep_records:
        result["records"] = [
            {
                "user": r.user,
                "started": round(r.started - t0, 4),
                "outcome": r.outcome,
                "finished": None if r.finished is None else round(r.finished - t0, 4),
                "thread": [{"status": a.status, "error": a.error} for a in r.thread],
                "attempts": [
                    {
                        "status": a.status,
                        "error": a.error,
                        "retry_after": a.retry_after,
                        "first_byte": None if a.first_byte is None else round(a.first_byte - a.started, 4),
                        "ttft": None if a.first_text is None else round(a.first_text - a.started, 4),
                        "tokens": len(a.texts),
                    }
                    for a in r.attempts
                ],
            }
            for r in load.records
        ]
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.agent_load", description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the API's base, e.g. http://127.0.0.1:PORT or http://127.0.0.1:PORT/langgraph")
    parser.add_argument("--shape", choices=("closed", "burst", "sampler", "single"), required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=10.0, help="closed, sampler, single: seconds of new runs")
    parser.add_argument("--rate", type=float, default=2.0, help="sampler: run starts per second; single: at most")
    parser.add_argument("--max-retries", type=int, default=2)
    parser.add_argument("--stream-timeout", type=float, default=120.0, help="each request, whole stream included")
    parser.add_argument("--hard-limit", type=float, default=600.0, help="seconds after the last start before users are cancelled")
    parser.add_argument("--assistant", default="agent")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--expected", required=True, help="the answer's exact text")
    parser.add_argument("--tokens", type=int, required=True, help="text chunks the answer arrives in")
    parser.add_argument("--rss-pid", type=int, default=0, help="the server's top process: its tree's RSS is sampled")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--label", default="")
    parser.add_argument("--keep-records", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.rate <= 0:
        parser.error("--concurrency must be at least 1 and --rate above 0")
    raise_fd_limit()
    import uvloop

    emit_result(uvloop.run(main_async(args)), args.out)


if __name__ == "__main__":
    main()
