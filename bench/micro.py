"""Two floors the full benchmark cannot separate from its noise, measured in one process.

``python -m bench.micro relay``: CPU per token of the relay alone. A model
that costs nothing (tokens from generators nested like ChatOpenAI's, one
every ``--interval`` seconds) is consumed C at a time, bare and through the
service's ``Producer`` and ``Relay``; the difference is what the relay
costs per token. CPU time per token is much steadier on this machine than
tokens/s between processes, so relay changes are judged here first.

``python -m bench.micro greenlet``: the resident memory one parked greenlet
costs, at several generator depths: the floor under "RSS per open stream",
since a served stream parks two greenlets (the server's handler and the
producer), each with its C stack copy and its frame stack.

Both print JSON.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402 - after patching, like a gevent worker
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any, Iterator  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402
import psutil  # noqa: E402
from langchain_core.messages import AIMessageChunk  # noqa: E402

from bench.report import median_of  # noqa: E402
from uncut.eventlog import MemoryEventLog  # noqa: E402
from uncut.gunicorn import tune_gc  # noqa: E402
from uncut.openai_responses import ResponsesFormat  # noqa: E402
from uncut.options import StreamOptions  # noqa: E402
from uncut.producer import Producer  # noqa: E402
from uncut.relay import Relay  # noqa: E402
from uncut.ui_messages import UIMessageFormat  # noqa: E402

MODEL_DEPTH = 15  # generator levels between llm.stream() and the socket read in the real client


# A real message chunk, as ChatOpenAI yields (the event translator branches on its class), built
# once: building it is the client's cost, the same with and without the relay.
_CHUNK = AIMessageChunk(content="tok ")


def _nested(depth: int, tokens: int, interval: float) -> Iterator[AIMessageChunk]:
    if depth == 0:
        for _ in range(tokens):
            gevent.sleep(interval)  # the socket read: a switch to the hub and back
            yield _CHUNK
        return
    yield from _nested(depth - 1, tokens, interval)


class FreeModel:
    """A Runnable-shaped model whose tokens cost nothing but their arrival."""

    def __init__(self, tokens: int, interval: float) -> None:
        self.tokens = tokens
        self.interval = interval

    def stream(self, input: Any, config: Any = None) -> Iterator[AIMessageChunk]:
        return _nested(MODEL_DEPTH, self.tokens, self.interval)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


MODES = ("bare", "text", "sse", "ui", "responses")


def _frames(relay: Relay, mode: str) -> Iterator[bytes]:
    """The relay's output for a surface: text, SSE, the AI SDK's UI messages, or OpenAI Responses events."""
    if mode == "text":
        return relay.text_chunks()
    if mode == "ui":
        return relay.frames(UIMessageFormat(relay.stream_id).frame)
    if mode == "responses":
        return relay.frames(ResponsesFormat(relay.stream_id, {"model": "m"}).frame)
    return relay.sse_frames()


def relay_cost(mode: str, concurrency: int, streams: int, tokens: int, interval: float) -> dict[str, Any]:
    """CPU microseconds per token with ``mode`` bare (the model alone) or through one of the relay's surfaces."""
    model = FreeModel(tokens, interval)
    options = StreamOptions()

    def user(index: int) -> None:
        for n in range(streams):
            if mode == "bare":
                for _ in model.stream(None):
                    pass
                continue
            producer = Producer(model, None, MemoryEventLog(f"s{index}-{n}"))
            relay = Relay(producer.log, options, producer=producer)
            for _ in _frames(relay, mode):
                pass

    cpu, wall = _cpu_seconds(), time.perf_counter()
    gevent.joinall([gevent.spawn(user, i) for i in range(concurrency)], raise_error=True)
    cpu, wall = _cpu_seconds() - cpu, time.perf_counter() - wall
    total = concurrency * streams * tokens
    return {"mode": mode, "cpu_us_per_token": round(cpu / total * 1e6, 2), "tokens_per_s": round(total / wall)}


def relay_main(args: argparse.Namespace) -> dict[str, Any]:
    tune_gc()  # as the service's worker runs
    for mode in MODES:
        relay_cost(mode, 50, 1, 10, 0.001)  # warm-up
    rounds: list[dict[str, Any]] = []
    for _ in range(args.rounds):  # modes alternate inside each round, so drift falls on all of them
        rounds += [relay_cost(mode, args.concurrency, args.streams, args.tokens, args.interval) for mode in MODES]
    medians = {mode: median_of([r for r in rounds if r["mode"] == mode], "cpu_us_per_token") for mode in MODES}
    return {
        "measure": "relay",
        "concurrency": args.concurrency,
        "tokens": args.tokens,
        "interval_s": args.interval,
        "cpu_us_per_token": medians,
        "relay_us_per_token": {mode: round(medians[mode] - medians["bare"], 2) for mode in MODES[1:]},
        "rounds": rounds,
    }


def greenlet_rss(greenlets: int, depth: int) -> float:
    """KB of RSS per greenlet parked ``depth`` generator levels deep; run in a fresh process per depth,
    since memory freed by one measurement would be reused by the next."""
    me = psutil.Process()
    release = gevent.event.Event()

    def parked(level: int) -> Iterator[None]:
        if level == 0:
            release.wait()
            yield
            return
        yield from parked(level - 1)

    def park() -> None:
        for _ in parked(depth):
            pass

    gevent.sleep(0)
    before = me.memory_info().rss
    parked_greenlets = [gevent.spawn(park) for _ in range(greenlets)]
    gevent.sleep(0.1)  # every one has run to its wait
    grown = me.memory_info().rss - before
    release.set()
    gevent.joinall(parked_greenlets)
    return round(grown / greenlets / 1024, 2)


def greenlet_main(args: argparse.Namespace) -> dict[str, Any]:
    if args.depth is not None:
        return {"depth": args.depth, "kb_per_greenlet": greenlet_rss(args.greenlets, args.depth)}
    result: dict[str, Any] = {"measure": "greenlet", "greenlets": args.greenlets, "kb_per_greenlet": {}}
    for depth in (0, 5, MODEL_DEPTH):
        child = subprocess.run(
            [sys.executable, "-m", "bench.micro", "greenlet", "--greenlets", str(args.greenlets), "--depth", str(depth)],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        result["kb_per_greenlet"][f"depth {depth}"] = json.loads(child.stdout)["kb_per_greenlet"]
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="measure", required=True)
    relay = sub.add_parser("relay", help="CPU per token: bare, and through the relay's text, SSE, UI message and Responses surfaces")
    relay.add_argument("--concurrency", type=int, default=400)
    relay.add_argument("--streams", type=int, default=5, help="streams per user")
    relay.add_argument("--tokens", type=int, default=50)
    relay.add_argument("--interval", type=float, default=0.02)
    relay.add_argument("--rounds", type=int, default=3)
    greenlet = sub.add_parser("greenlet", help="RSS per parked greenlet at generator depths 0, 5 and 15")
    greenlet.add_argument("--greenlets", type=int, default=5000)
    greenlet.add_argument("--depth", type=int, help="one depth in this process (default: 0, 5 and 15, each in a child)")
    args = parser.parse_args(argv)
    print(json.dumps(relay_main(args) if args.measure == "relay" else greenlet_main(args)))


if __name__ == "__main__":
    main()
