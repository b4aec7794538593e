"""``python -m bench.openloop``: bursts and Poisson arrivals, the service side by side with the references.

A closed loop only sends a new stream when an old one ends, so it never
asks more of an app than the app gives. Here the load does not wait:

- bursts of C new streams at once (C = 400, 1000);
- Poisson arrivals at 1x, 2x and 4x the service worker's measured
  capacity (streams per second in a closed loop at C=400), 20 s each.

Clients behave like the openai SDK's: a refusal (or a failure) is retried
up to twice, after the delay the server names (``retry-after-ms``,
``Retry-After``), so a refusal that ends in no answer counts against the app.

Reported per run: the first byte of every request (served or refused),
TTFT of the admitted ones, the share of clients answered in the end and
the time to their whole answer, the share of attempts refused, goodput (tokens/s of streams
that completed), the gap p99, and when the last admitted stream finished.
A separate sampler process sends a few streams of its own during each run;
its first bytes must agree with the load generator's, or the generator was
the bottleneck. Writes ``bench/OPENLOOP.md`` and ``bench/openloop.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.procs import PYTHON, ROOT, Child, child_setup, run_json
from bench.run import BENCH_DIR, Bench, Settings, log
from bench.servers import TARGETS, Target, clean_env

SAMPLER_RATE = 2.0  # the sampler's own streams per second: too few to load anything
APPS = {
    # the line, the schedule of Retry-After and the gate (the defaults)
    "service": ("service", {"WEBAPP_ADAPTIVE_ADMISSION": "true"}),
    # admission as it was before the line: lag-only, refused at once in the view, a fixed Retry-After
    "service-lag-only": (
        "service",
        {"WEBAPP_ADAPTIVE_ADMISSION": "true", "WEBAPP_ADMISSION_START_BUDGET_MS": "0", "WEBAPP_ADMISSION_GATE": "false"},
    ),
    "service-no-adaptive": ("service", {"WEBAPP_ADAPTIVE_ADMISSION": "false"}),
    "fastapi": ("fastapi", {}),
    "flask-gevent": ("flask-gevent", {}),
}


class OpenLoop:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.bench = Bench(replace(Settings(), tokens=args.tokens, interval=args.interval, stream_timeout=120.0, out_dir=args.out))
        self.rows: list[dict[str, Any]] = []

    def start(self, app: str) -> tuple[Child, Target]:
        server_name, env = APPS[app]
        bench = self.bench
        bench.s.service_env = env
        target = TARGETS["service-sse" if server_name == "service" else server_name]
        server = bench.start_server(server_name)
        bench.warm_up(server, target)
        return server, target

    def capacity(self) -> float:
        """The service worker's streams per second at its peak: a closed loop at C=400, nothing refused."""
        server, target = self.start("service-no-adaptive")
        try:
            row = self.bench.load(server, target, 400, duration=self.args.capacity_seconds)
        finally:
            self.bench.stop(server)
        streams_per_s = row["tokens_per_s"] / self.args.tokens
        log(f"capacity: {row['tokens_per_s']} tok/s = {streams_per_s:.1f} streams/s")
        return streams_per_s

    def run(self, app: str, server: Child, target: Target, *, burst: int = 0, rate: float = 0.0, multiple: float = 0.0) -> dict[str, Any]:
        bench = self.bench
        seconds = self.args.seconds if rate else self.args.sampler_seconds
        common = [
            "--url",
            server.url,
            "--path",
            target.path,
            "--mode",
            target.mode,
            "--tokens",
            str(self.args.tokens),
            "--interval",
            str(self.args.interval),
            "--stream-timeout",
            "120",
            "--keep-records",
        ]
        command = [PYTHON, "-m", "bench.load", "--app", app, *common, "--max-retries", str(self.args.max_retries)]
        command += ["--rate", str(rate), "--duration", str(seconds)] if rate else ["--burst", "--concurrency", str(burst)]
        sampler_out = bench.logs / "sampler.json"
        sampler_out.unlink(missing_ok=True)
        bench.wait_idle()
        bench.wait_quiet()
        log(f"{app}: {'burst of ' + str(burst) if burst else f'Poisson {rate:.1f}/s ({multiple:g}x) for {seconds:g}s'}")
        sampler = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "bench.load",
                "--app",
                "sampler",
                *common,
                "--rate",
                str(SAMPLER_RATE),
                "--duration",
                str(seconds),
                "--seed",
                "99",
                "--out",
                str(sampler_out),
            ],
            cwd=ROOT,
            env=clean_env(""),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=child_setup(bench.load_cpus),
        )
        started = time.monotonic()
        result = run_json(command, out=bench.scratch, timeout=seconds + 400, env=clean_env(""), cpus=bench.load_cpus)
        elapsed = time.monotonic() - started
        try:
            sampler.wait(timeout=seconds + 200)
        finally:
            if sampler.poll() is None:
                sampler.kill()
        sampled = json.loads(sampler_out.read_text())["open_loop"] if sampler_out.exists() else {}
        row = {
            "app": app,
            "kind": "burst" if burst else "poisson",
            "burst": burst or None,
            "rate": round(rate, 2) or None,
            "multiple": multiple or None,
            **result["open_loop"],
            "loadgen_cpu_pct": round(100 * result["loadgen_cpu_s"] / max(1e-9, elapsed), 1),
            "sampler": {
                k: sampled.get(k) for k in ("requests", "first_byte_p50_ms", "first_byte_p99_ms", "ttft_admitted_p50_ms", "refused")
            },
        }
        log(
            f"  first byte p50/p99 {row['first_byte_p50_ms']}/{row['first_byte_p99_ms']} ms (sampler {row['sampler']['first_byte_p50_ms']}/"
            f"{row['sampler']['first_byte_p99_ms']}), refused {row['refused_share']:.0%}, TTFT p99 {row['ttft_admitted_p99_ms']} ms, "
            f"goodput {row['goodput_tokens_per_s']} tok/s, admitted failed {row['admitted_failed']}, "
            f"last {row['last_admitted_finished_s']} s, "
            f"answered {row.get('answered')}/{row.get('users')} (answer p99 {row.get('answer_p99_ms')} ms)"
        )
        return row

    def main(self) -> None:
        bench = self.bench
        try:
            bench.start_upstream()
            capacity = self.args.capacity or self.capacity()
            for app in self.args.apps:
                server, target = self.start(app)
                try:
                    for burst in self.args.bursts:
                        self.rows.append(self.run(app, server, target, burst=burst))
                    for multiple in self.args.multiples:
                        self.rows.append(self.run(app, server, target, rate=capacity * multiple, multiple=multiple))
                finally:
                    bench.stop(server)
        finally:
            bench.stop_all()
        out = {
            "capacity_streams_per_s": round(capacity, 2),
            "tokens": self.args.tokens,
            "interval_s": self.args.interval,
            "max_retries": self.args.max_retries,
            "rows": self.rows,
        }
        (self.args.out / "openloop.json").write_text(json.dumps(out, indent=1))
        (self.args.out / "OPENLOOP.md").write_text(table(out))
        log(f"wrote {self.args.out / 'OPENLOOP.md'}")


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def table(out: dict[str, Any]) -> str:
    retries = out.get("max_retries", 0)
    lines = [
        "# Open loop: bursts and Poisson arrivals, with clients that retry as the SDKs do",
        "",
        f"One worker per app, {out['tokens']} tokens {out['interval_s'] * 1000:g} ms apart; the service worker's capacity "
        f"{out['capacity_streams_per_s']} streams/s (closed loop, C=400, no admission). Each client retries a refusal or a "
        f"failure up to {retries} times after the delay the openai SDK would wait (the server's `retry-after-ms` / "
        "`Retry-After` up to 60 s, else 0.5 s doubling). Answered: clients whose last attempt got the whole answer. "
        "Answer time: from a client's first attempt to its whole answer. First byte: every request, served or refused; "
        "TTFT: admitted requests. Sampler: a separate process's own streams during the same run (first byte p50 / p99).",
        "",
        "| app | load | answered | answer p50 / p99 ms | first byte p50 / p99 ms | sampler p50 / p99 ms | refused (attempts) "
        "| TTFT admitted p50 / p99 ms | goodput tok/s | admitted failed |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in out["rows"]:
        load = f"burst {row['burst']}" if row["kind"] == "burst" else f"Poisson {row['multiple']:g}x ({row['rate']}/s)"
        sampler = row["sampler"]
        answered = f"{row['answered']:,} / {row['users']:,} ({row['answered_share']:.1%})" if "answered" in row else "–"
        lines.append(
            f"| {row['app']} | {load} | {answered} | {_ms(row.get('answer_p50_ms'))} / {_ms(row.get('answer_p99_ms'))} | "
            f"{_ms(row['first_byte_p50_ms'])} / {_ms(row['first_byte_p99_ms'])} | "
            f"{_ms(sampler.get('first_byte_p50_ms'))} / {_ms(sampler.get('first_byte_p99_ms'))} | {row['refused_share']:.0%} | "
            f"{_ms(row['ttft_admitted_p50_ms'])} / {_ms(row['ttft_admitted_p99_ms'])} | {row['goodput_tokens_per_s']:,.0f} | "
            f"{row['admitted_failed']} |"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.openloop", description=__doc__.splitlines()[0])
    parser.add_argument("--apps", nargs="+", choices=sorted(APPS), default=list(APPS))
    parser.add_argument("--bursts", nargs="*", type=int, default=[400, 1000])
    parser.add_argument("--multiples", nargs="*", type=float, default=[1, 2, 4])
    parser.add_argument("--seconds", type=float, default=20.0, help="each Poisson run")
    parser.add_argument("--max-retries", type=int, default=2, help="each client's retries (the openai SDK's default)")
    parser.add_argument("--sampler-seconds", type=float, default=10.0, help="the sampler's run during a burst")
    parser.add_argument("--capacity", type=float, default=0.0, help="streams/s; default: measure it")
    parser.add_argument("--capacity-seconds", type=float, default=15.0)
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument("--out", type=Path, default=BENCH_DIR)
    return parser.parse_args(argv)


if __name__ == "__main__":
    OpenLoop(parse_args(sys.argv[1:])).main()
