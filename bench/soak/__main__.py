"""``python -m bench.soak``: clients, load and faults at once, then every history checked.

    python -m bench.soak                                   # 200 clients, 10 minutes, seed 7
    python -m bench.soak --clients 40 --seconds 120 --seed 1

Prints one summary line, writes ``soak-<seed>.json`` (the summary and the
fault timeline) and ``soak-<seed>-failures.jsonl`` (the full history of
every stream that failed a check) to ``--out``; exits 1 if anything was
lost, duplicated or ended silently, or a run went on or was generated
twice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import httpx

from bench.soak.checks import _as_json, check, summary, write_failures
from bench.soak.client import Client
from bench.soak.cluster import Cluster, Settings
from bench.soak.plan import UpstreamFaults, tag_of
from tests.support.openai_upstream import OpenAIUpstream, Script
from tests.support.servers import ROOT

# What is done to the cluster, at what share of the soak (each moved by up to ±3 % by the seed).
SCHEDULE: list[tuple[float, str]] = [
    (0.12, "reload_nginx"),
    (0.25, "rolling_restart 0"),
    (0.38, "kill_a_worker 1"),
    (0.50, "stop_and_restart 1"),
    (0.60, "restart_redis"),
    (0.70, "failover_redis"),
    (0.80, "rolling_restart 1"),
    (0.90, "kill_a_worker 0"),
]
FINISH_SECONDS = 90  # after the soak, how long clients may take to finish the streams they are in


def fault_schedule(rng: random.Random, seconds: float) -> list[tuple[float, str]]:
    return [(max(1.0, (share + rng.uniform(-0.03, 0.03)) * seconds), action) for share, action in SCHEDULE]


def run_faults(cluster: Cluster, schedule: list[tuple[float, str]], started: float, stop: threading.Event) -> None:
    for at, action in schedule:
        if stop.wait(max(0.0, started + at - time.monotonic())):
            return
        name, *args = action.split()
        getattr(cluster, name)(*map(int, args))


def planner(faults: UpstreamFaults) -> Callable[[dict[str, Any], int], Script]:
    """The upstream's script per request: the answer the prompt asks for, failed on purpose now and then."""
    tries: Counter[str] = Counter()
    lock = threading.Lock()

    def plan(body: dict[str, Any], number: int) -> Script:
        tag = tag_of(body) or ""
        with lock:
            earlier = tries[tag]
            tries[tag] += 1
        return faults.script_for(body, earlier)

    return plan


async def drive(url: str, clients: int, seconds: float, seed: int, cut_rate: float, leave_rate: float) -> list[Client]:
    limits = httpx.Limits(max_connections=clients * 2, max_keepalive_connections=clients)
    timeout = httpx.Timeout(30.0, read=10.0)  # heartbeats come every second: ten without a byte is a dead connection
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as http:
        users = [Client(http, url, n, random.Random(f"{seed}:{n}"), cut_rate, leave_rate) for n in range(clients)]
        stop_at = time.monotonic() + seconds
        tasks = [asyncio.create_task(user.run_until(stop_at)) for user in users]
        done, pending = await asyncio.wait(tasks, timeout=seconds + FINISH_SECONDS)
        for task in pending:
            task.cancel()
        for task in done:
            task.result()
    return users


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cut-rate", type=float, default=0.3, help="share of streams a client cuts (once or twice)")
    parser.add_argument("--leave-rate", type=float, default=0.05, help="share of streams a client leaves for good")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "soak-results")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    settings = Settings()
    with OpenAIUpstream() as upstream:
        upstream.plan = planner(UpstreamFaults(args.seed))
        cluster = Cluster(args.out / f"soak-{args.seed}-logs", upstream, settings).start()
        stop = threading.Event()
        schedule = fault_schedule(rng, args.seconds)
        faults = threading.Thread(target=run_faults, args=(cluster, schedule, time.monotonic(), stop), daemon=True)
        try:
            faults.start()
            users = asyncio.run(drive(cluster.url, args.clients, args.seconds, args.seed, args.cut_rate, args.leave_rate))
            stop.set()
            faults.join(settings.graceful_timeout + 30)
            time.sleep(settings.grace_seconds + 4)  # let runs whose clients left reach their grace and stop
        finally:
            stop.set()
            cluster.stop()
        histories = [history for user in users for history in user.histories]
        verdict = check(histories, list(upstream.requests), settings.grace_seconds)
    line = summary(verdict, cluster.faults, args.seed, args.clients, args.seconds)
    print(line)
    (args.out / f"soak-{args.seed}.json").write_text(
        json.dumps(
            {
                "summary": line,
                "ok": verdict.ok,
                "faults": cluster.faults,
                "errors": dict(verdict.errors),
                "upstream_faults": dict(verdict.upstream_faults),
            },
            indent=2,
        )
    )
    failures = args.out / f"soak-{args.seed}-failures.jsonl"
    write_failures(verdict, failures)
    # Explicit errors are not failures, but each is an answer a client did not get: kept for reading.
    errored = [h for h in histories if not h.orphaned and h.left_at is None and h.terminal is not None and h.terminal[0] != "end"]
    (args.out / f"soak-{args.seed}-errors.jsonl").write_text("".join(json.dumps(_as_json(h), default=str) + "\n" for h in errored))
    if not verdict.ok:
        print(f"failures: {failures}", file=sys.stderr)
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
