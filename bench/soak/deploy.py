"""``python -m bench.soak.deploy``: the deploy-chaos scenario, every answer checked against the uninterrupted one.

    python -m bench.soak.deploy                              # 40 clients, 5 rounds, seed 1
    python -m bench.soak.deploy --clients 40 --rounds 1 --drop-token   # the negative control

Each round: two instances of two gevent workers on a real Redis behind the
shipped nginx; 40 clients each start one long answer, cut it twice at
random and resume with ``Last-Event-ID``; while they stream, one instance
gets SIGHUP (a rolling restart) and the other SIGTERM (a deploy), which
is then started again for the next round. Every answer that ended with
``end`` must be, character for character, the deterministic upstream's
uninterrupted answer: contiguous ids are not enough, since a token that
never reached the log leaves no gap in them.

``--drop-token`` makes the upstream leave one token out of some answers
(ids stay contiguous): the content check must catch it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx

from bench.soak.checks import Verdict, _as_json, check
from bench.soak.client import Behaviour, Client, History
from bench.soak.cluster import Cluster, Settings
from bench.soak.plan import UpstreamFaults, tag_of
from tests.support.openai_upstream import OpenAIUpstream, Script
from tests.support.servers import ROOT

TOKENS = 60
INTERVAL_MS = 100  # an answer takes about 6 s, so both deploys land while every client streams
FIRST_DEPLOY_SECONDS = 1.5
SECOND_DEPLOY_SECONDS = 3.0
FINISH_SECONDS = 60  # after the deploys, how long the clients may take to finish


class DeployClient(Client):
    """One user: one long answer, cut twice at random byte offsets, resumed each time."""

    async def one_stream(self, round_number: int) -> None:
        cuts = tuple(sorted(self.rng.randrange(300, 4000) for _ in range(2)))
        await self.stream(f"d{round_number}c{self.number}", TOKENS, INTERVAL_MS, Behaviour(cuts, None))


def dropping_planner(
    faults: UpstreamFaults, rng: random.Random, share: float, dropped: set[str]
) -> Callable[[dict[str, Any], int], Script]:
    """The upstream's answers, with one token left out of ``share`` of them (the negative control), named in ``dropped``."""
    lock = threading.Lock()

    def plan(body: dict[str, Any], number: int) -> Script:
        script = faults.script_for(body, 0)
        tag = tag_of(body)
        with lock:
            if tag is None or share <= 0 or rng.random() >= share or len(script.texts) < 3:
                return script
            dropped.add(tag)
            gone = rng.randrange(1, len(script.texts) - 1)
        texts = script.texts[:gone] + script.texts[gone + 1 :]
        return Script(tokens=len(texts), texts=texts, interval=script.interval)

    return plan


async def _drive(url: str, clients: int, seed: int, round_number: int) -> list[DeployClient]:
    limits = httpx.Limits(max_connections=clients * 2, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30.0, read=10.0)) as http:
        users = [DeployClient(http, url, n, random.Random(f"{seed}:{round_number}:{n}"), 1.0, 0.0) for n in range(clients)]
        tasks = [asyncio.create_task(user.one_stream(round_number)) for user in users]
        done, pending = await asyncio.wait(tasks, timeout=FINISH_SECONDS)
        for task in pending:
            task.cancel()
        for task in done:
            task.result()
    return users


def _deploys(cluster: Cluster, started: float, restart: bool, failures: list[BaseException]) -> None:
    """A rolling restart of one instance, then a deploy of the other (started again if another round follows)."""
    try:
        time.sleep(max(0.0, started + FIRST_DEPLOY_SECONDS - time.monotonic()))
        cluster.rolling_restart(0)
        time.sleep(max(0.0, started + SECOND_DEPLOY_SECONDS - time.monotonic()))
        if restart:
            cluster.stop_and_restart(1)
        else:
            cluster.stop_instance(1)
    except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which fails the run
        failures.append(exc)


@dataclass
class Outcome:
    """What a run of the scenario found: the verdict, the faults done (with their times), every history,
    and the answers the upstream left a token out of on purpose."""

    verdict: Verdict
    faults: list[tuple[float, str]]
    histories: list[History]
    dropped: set[str] = field(default_factory=set)


def run(workdir: Path, *, clients: int = 40, rounds: int = 5, seed: int = 1, drop_token: float = 0.0) -> Outcome:
    """Every round on one cluster, then every answer checked."""
    settings = Settings()
    faults = UpstreamFaults(seed, rate_limited=0.0, server_error=0.0, dropped=0.0)  # the deploys are the faults here
    dropped: set[str] = set()
    with OpenAIUpstream() as upstream:
        upstream.plan = dropping_planner(faults, random.Random(seed), drop_token, dropped)
        cluster = Cluster(workdir, upstream, settings).start()
        histories = []
        try:
            for round_number in range(rounds):
                started = time.monotonic()
                failures: list[BaseException] = []
                deploys = threading.Thread(target=_deploys, args=(cluster, started, round_number + 1 < rounds, failures), daemon=True)
                deploys.start()
                users = asyncio.run(_drive(cluster.url, clients, seed, round_number))
                deploys.join(settings.graceful_timeout + 30)
                if failures:
                    raise RuntimeError("a deploy failed") from failures[0]
                histories += [history for user in users for history in user.histories]
        finally:
            cluster.stop()
        verdict = check(histories, list(upstream.requests), settings.grace_seconds)
    return Outcome(verdict, cluster.faults, histories, dropped)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--drop-token",
        type=float,
        nargs="?",
        const=0.25,
        default=0.0,
        help="share of answers the upstream leaves one token out of (the negative control)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "soak-results")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    outcome = run(
        args.out / f"deploy-{args.seed}-logs", clients=args.clients, rounds=args.rounds, seed=args.seed, drop_token=args.drop_token
    )
    verdict, faults, histories = outcome.verdict, outcome.faults, outcome.histories
    line = (
        f"deploy chaos seed={args.seed} clients={args.clients} rounds={args.rounds}: answers {verdict.streams}, "
        f"completed {verdict.completed}, cuts {verdict.cuts}, resumes {verdict.resumes}; lost {verdict.lost}, "
        f"duplicated {verdict.duplicated}, content mismatched {verdict.mismatched}, silent cuts {verdict.silent}; "
        f"lost to infrastructure {sum(verdict.infrastructure.values())}; tokens left out on purpose {len(outcome.dropped)}; "
        f"explicit errors: " + (", ".join(f"{k} {v}" for k, v in sorted(verdict.errors.items())) or "none")
    )
    print(line)
    (args.out / f"deploy-{args.seed}.json").write_text(
        json.dumps(
            {
                "summary": line,
                "ok": verdict.ok,
                "mismatched": verdict.mismatched,
                "lost": verdict.lost,
                "faults": faults,
                "errors": dict(verdict.errors),
                "infrastructure": dict(verdict.infrastructure),
                "failures": verdict.failures[:20],
                "not_completed": [_as_json(h) for h in histories if h.terminal is None or h.terminal[0] != "end"][:20],
            },
            indent=2,
            default=str,
        )
    )
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
