"""The bare in-process ceiling: ``llm.stream()`` consumed in a loop, C at a time, with no HTTP server.

With ``--through relay`` the same streams go through the service's
producer, event log and SSE framing (``Producer`` and ``Relay``), still
without HTTP: the relay's own cost, apart from serving HTTP.

``python -m bench.ceiling --concurrency C --duration D`` prints one JSON
summary. It runs the same client the service runs (the real ChatOpenAI,
synchronous, under gevent monkey-patching, one greenlet per stream) in one
process, so the service's tokens/s divided by this is what its own relay,
framing and HTTP serving cost.
"""

from __future__ import annotations

import os

os.environ.setdefault("GEVENT_RESOLVER", "ares")  # as conf/gunicorn.conf.py sets it for the service

from gevent import monkey  # noqa: E402

monkey.patch_all()

import argparse  # noqa: E402 - after patching, like a gevent worker
import resource  # noqa: E402
import time  # noqa: E402
from typing import Any, Iterator  # noqa: E402

import gevent  # noqa: E402
from langchain_core.messages import HumanMessage  # noqa: E402

from bench.load import emit_result, percentile  # noqa: E402
from uncut.eventlog import MemoryEventLog  # noqa: E402
from uncut.options import StreamOptions  # noqa: E402
from uncut.producer import Producer  # noqa: E402
from uncut.relay import Relay  # noqa: E402

now = time.perf_counter


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--tokens", type=int, required=True, help="tokens each stream must deliver")
    parser.add_argument("--interval", type=float, default=0.0, help="the upstream's interval, for the gap excess")
    parser.add_argument("--burst", action="store_true", help="one stream per greenlet instead of a closed loop")
    parser.add_argument("--ramp", type=float, default=0.0, help="burst: spread the starts over this many seconds")
    parser.add_argument("--stream-timeout", type=float, default=60.0)
    parser.add_argument(
        "--client",
        choices=("service", "stock"),
        default="service",
        help="the service's model (webapp.providers) or a stock ChatOpenAI like the reference apps",
    )
    parser.add_argument(
        "--through",
        choices=("model", "relay"),
        default="model",
        help="consume llm.stream() itself, or through the service's Producer and Relay (SSE frames)",
    )
    parser.add_argument("--out")
    args = parser.parse_args(argv)

    from bench.apps import chat_model, service_chat_model
    from bench.upstream import raise_fd_limit

    raise_fd_limit()
    llm = service_chat_model() if args.client == "service" else chat_model()
    messages = [HumanMessage(content="bench")]
    for _ in llm.stream(messages):  # warm-up: connection, imports, pydantic models
        pass
    from uncut.gunicorn import tune_gc

    tune_gc()  # as conf/gunicorn.conf.py does for the service's worker

    import psutil

    me = psutil.Process()
    rss_idle = me.memory_info().rss
    token_times: list[float] = []
    ttfts: list[float] = []
    gaps: list[float] = []
    errors: dict[str, int] = {}
    streams = 0
    in_flight = 0
    fullest = (0, rss_idle)  # (streams in flight, RSS) at the fullest moment, as the load generator samples apps
    t0 = now()
    before = resource.getrusage(resource.RUSAGE_SELF)
    stop_at = t0 + args.duration

    def sample() -> None:
        nonlocal fullest
        while True:
            fullest = max(fullest, (in_flight, me.memory_info().rss))
            gevent.sleep(0.1)

    def arrivals(stream_id: str) -> Iterator[int]:
        """How many tokens each read delivers: one per chunk of llm.stream(), or per SSE write of the relay."""
        if args.through == "model":
            for chunk in llm.stream(messages):
                if chunk.content:
                    yield 1
            return
        producer = Producer(llm, messages, MemoryEventLog(stream_id), start_data={"model": "bench-model"})
        frame = b""
        for frame in Relay(producer.log, StreamOptions(), producer=producer).sse_frames():
            tokens = frame.count(b"event: token\n")
            if tokens:
                yield tokens
        if b"event: end\n" not in frame:
            raise RuntimeError("the relay ended without its end event")

    def user(index: int) -> None:
        nonlocal streams, in_flight
        if args.ramp:
            gevent.sleep(index * args.ramp / args.concurrency)
        while True:
            started = now()
            streams += 1
            in_flight += 1
            count = 0
            token_times_last = started
            try:
                for arrived in arrivals(f"s_{index}_{streams}"):
                    at = now()
                    if count == 0:
                        ttfts.append(at - started)
                    else:
                        gaps.append(at - token_times_last)
                    gaps.extend([0.0] * (arrived - 1))  # tokens that came in one write arrive together
                    token_times_last = at
                    token_times.extend([at] * arrived)
                    count += arrived
            except Exception as exc:  # noqa: BLE001 - counted, like the load generator's errors
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            else:
                if count != args.tokens:
                    errors["missing_tokens"] = errors.get("missing_tokens", 0) + 1
            finally:
                in_flight -= 1
            if args.burst or now() >= stop_at:
                return

    sampler = gevent.spawn(sample)
    greenlets = [gevent.spawn(user, i) for i in range(args.concurrency)]
    gevent.joinall(greenlets, timeout=(args.ramp if args.burst else args.duration) + args.stream_timeout)
    unfinished = [g for g in greenlets if not g.dead]
    gevent.killall([*unfinished, sampler], block=False)
    span = max(1e-9, (max(token_times) if token_times else t0) - t0)  # like the load generator: to the last token
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result: dict[str, Any] = {
        "app": "ceiling-relay" if args.through == "relay" else "ceiling" if args.client == "service" else "ceiling-stock",
        "client": args.client,
        "concurrency": args.concurrency,
        "streams": streams,
        "error_total": sum(errors.values()) + len(unfinished),
        "errors": errors,
        "completed": streams - sum(errors.values()) - len(unfinished),
        "tokens_total": len(token_times),
        "tokens_per_s": round(len(token_times) / span, 1),
        "span_s": round(span, 3),
        "ttft_p50_ms": round((percentile(ttfts, 50) or 0) * 1000, 2),
        "ttft_p99_ms": round((percentile(ttfts, 99) or 0) * 1000, 2),
        "gap_p99_ms": round((percentile(gaps, 99) or 0) * 1000, 2),
        "gap_excess_p99_ms": round(((percentile(gaps, 99) or 0) - args.interval) * 1000, 2) if gaps else None,
        "cpu_s": round(usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime, 3),
        "wall_s": round(now() - t0, 3),
        "unfinished": len(unfinished),
        "rss_idle_bytes": rss_idle,
        "rss_open_bytes": fullest[1],
        "open_streams_at_rss": fullest[0],
        "rss_per_stream_kb": round((fullest[1] - rss_idle) / fullest[0] / 1024, 2) if fullest[0] else None,
    }
    emit_result(result, args.out)


if __name__ == "__main__":
    main()
