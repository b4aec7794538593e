"""``python -m bench.scaling``: does goodput grow with workers? One worker, two, and two instances behind nginx.

Each row is a closed loop (``bench.load``) of ``--per-worker`` streams per
worker, 50 tokens 20 ms apart, from the bench's OpenAI-protocol upstream
through the real ChatOpenAI, with admission off (a closed loop measures the
peak with every user served):

- ``1 worker``: one gunicorn gevent worker;
- ``2 workers``: one instance, ``GUNICORN_WORKERS=2`` (the kernel spreads
  connections between the two accept loops);
- ``2 instances + nginx``: two one-worker instances behind nginx from
  ``conf/nginx.conf`` (round robin, keep-alive to the upstreams).

Goodput is the tokens clients received per second; the ratio is against
the one-worker row of the same run. Rounds alternate the rows, and each
row's figure is its median. Nothing is pinned: two workers need both
cores, so the load generator, the upstream and nginx share them too (their
CPU is reported), and a ratio of 2.0 is out of reach on a 2-core machine.
Writes ``bench/SCALING.md`` and ``bench/scaling.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import psutil

from bench.procs import PYTHON, Child, cpu_seconds, free_port, run_json
from bench.run import BENCH_DIR, log
from bench.servers import clean_env, service

TOKENS, INTERVAL = 50, 0.02


class Row:
    """A way of serving: starts its processes, gives the URL to load, and the pids whose CPU counts as the app's."""

    def __init__(self, name: str, workers: int, start: Callable[[], tuple[str, list[Any]]]) -> None:
        self.name, self.workers, self._start = name, workers, start
        self.url = ""
        self.parts: list[Any] = []

    def start(self) -> None:
        self.url, self.parts = self._start()

    def stop(self) -> None:
        for part in reversed(self.parts):
            part.stop()
        self.parts = []


def _tree_cpu(pids: list[int]) -> float:
    """CPU seconds of these processes and all their children (a gunicorn master and its workers, nginx and its)."""
    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            for process in [root, *root.children(recursive=True)]:
                times = process.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def measure(row: Row, per_worker: int, seconds: float, scratch: Path, upstream: Child) -> dict[str, Any]:
    concurrency = per_worker * row.workers
    command = [
        PYTHON,
        "-m",
        "bench.load",
        "--url",
        row.url,
        "--path",
        "/api/chat/events",
        "--mode",
        "sse",
        "--app",
        row.name,
        "--concurrency",
        str(concurrency),
        "--tokens",
        str(TOKENS),
        "--interval",
        str(INTERVAL),
        "--duration",
        str(seconds),
        "--stream-timeout",
        "120",
    ]
    assert upstream.popen is not None
    apps = [p.popen.pid for p in row.parts if isinstance(p, Child) and p.popen is not None]
    proxies = [p.process.pid for p in row.parts if not isinstance(p, Child) and getattr(p, "process", None) is not None]
    before, apps0, proxies0 = cpu_seconds(upstream.popen.pid), _tree_cpu(apps), _tree_cpu(proxies)
    started = time.monotonic()
    result = run_json(command, out=scratch, timeout=seconds + 240, env=clean_env(""))
    elapsed = time.monotonic() - started
    app_cpu = _tree_cpu(apps) - apps0
    return {
        "tokens_per_s": result["tokens_per_s_window"],
        "streams_completed": result.get("completed"),
        "errors": result.get("errors"),
        "ttft_p99_ms": result.get("ttft_p99_ms"),
        "app_cpu_pct": round(100 * app_cpu / elapsed, 1),
        "tokens_per_app_cpu_s": round(result["tokens_total"] / app_cpu) if app_cpu else None,
        "nginx_cpu_pct": round(100 * (_tree_cpu(proxies) - proxies0) / elapsed, 1),
        "loadgen_cpu_pct": round(100 * result.get("loadgen_cpu_s", 0) / elapsed, 1),
        "upstream_cpu_pct": round(100 * (cpu_seconds(upstream.popen.pid) - before) / elapsed, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-worker", type=int, default=400, help="streams held open per worker")
    parser.add_argument("--seconds", type=float, default=15.0, help="each closed loop")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=BENCH_DIR)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    logs = workdir / "logs"
    logs.mkdir()
    sys.path.insert(0, str(BENCH_DIR.parent))
    from tests.support.proxies import Nginx, Variant, nginx_server  # the shipped conf/nginx.conf, as the tests run it

    port = free_port()
    upstream = Child(
        "upstream",
        [PYTHON, "-m", "bench.upstream", "--port", str(port), "--tokens", str(TOKENS), "--interval", str(INTERVAL)],
        port=port,
        env=clean_env(""),
        log_dir=logs,
        ready_path="/bench/stats",
    )
    upstream.start()
    upstream_url = f"{upstream.url}/v1"

    def instance(name: str, workers: int) -> Child:
        child = service(upstream_url, logs, None, service_env={"GUNICORN_WORKERS": str(workers)})
        child.name, child.log_path = name, logs / f"{name}.log"
        return child.start()

    def one() -> tuple[str, list[Any]]:
        server = instance("one-worker", 1)
        return server.url, [server]

    def two() -> tuple[str, list[Any]]:
        server = instance("two-workers", 2)
        return server.url, [server]

    def behind_nginx() -> tuple[str, list[Any]]:
        first, second = instance("instance-1", 1), instance("instance-2", 1)
        proxy = Nginx(workdir, first.port, Variant(add_after={"keepalive 32;": nginx_server(second.port)})).start()
        return proxy.url, [first, second, proxy]

    rows = [Row("1 worker", 1, one), Row("2 workers", 2, two), Row("2 instances + nginx", 2, behind_nginx)]
    found: dict[str, list[dict[str, Any]]] = {row.name: [] for row in rows}
    try:
        for round_ in range(args.rounds):
            for row in rows:
                row.start()
                try:
                    measure(row, 50, 3, workdir / "scratch.json", upstream)  # warm-up: imports, pools, connections
                    figure = measure(row, args.per_worker, args.seconds, workdir / "scratch.json", upstream)
                finally:
                    row.stop()
                log(f"round {round_ + 1} {row.name}: {figure['tokens_per_s']} tok/s")
                found[row.name].append(figure)
    finally:
        upstream.stop()
    base = statistics.median(f["tokens_per_s"] for f in found["1 worker"])
    summary = []
    for row in rows:
        median = statistics.median(f["tokens_per_s"] for f in found[row.name])
        summary.append(
            {"row": row.name, "workers": row.workers, "tokens_per_s": median, "ratio": round(median / base, 2), "rounds": found[row.name]}
        )
    out = {"per_worker": args.per_worker, "seconds": args.seconds, "rounds": args.rounds, "rows": summary}
    (args.out / "scaling.json").write_text(json.dumps(out, indent=2) + "\n")
    (args.out / "SCALING.md").write_text(table(out))
    print(table(out))


def table(out: dict[str, Any]) -> str:
    lines = [
        "# Scaling: one worker, two, and two instances behind nginx (`python -m bench.scaling`)",
        "",
        f"Closed loops of {out['per_worker']} streams per worker, {out['seconds']:g} s each, 50 tokens 20 ms apart, admission off; "
        f"median of {out['rounds']} alternating rounds. Nothing pinned: the load generator, the upstream and nginx share the "
        "machine's 2 cores with the workers.",
        "",
        "| row | workers | goodput tok/s | vs 1 worker | per-round tok/s | workers' CPU % | tokens per worker CPU s "
        "| load generator CPU % | upstream CPU % | nginx CPU % |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in out["rows"]:
        rounds = row["rounds"]

        def med(key: str) -> float:
            return statistics.median(r[key] or 0 for r in rounds)

        per_round = " / ".join(f"{r['tokens_per_s']:,.0f}" for r in rounds)
        lines.append(
            f"| {row['row']} | {row['workers']} | {row['tokens_per_s']:,.0f} | {row['ratio']:.2f}x | {per_round} | {med('app_cpu_pct'):g} "
            f"| {med('tokens_per_app_cpu_s'):,.0f} | {med('loadgen_cpu_pct'):g} | {med('upstream_cpu_pct'):g} | {med('nginx_cpu_pct'):g} |"
        )
    lines += ["", "CPU shares are of one core (200 % is the whole machine)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
