"""``python -m bench``: every app side by side, the ceiling, scale and cold start, then RESULTS.md.

One command starts the upstream, the service and the reference apps (one
worker each), drives them with the load generator, and writes
``RESULTS.md``, ``results.png`` and ``results.json``. On a machine with two
or more cores the app under test is pinned to CPU 0 and everything else
(upstream, load generator, this process) to CPU 1, so every app gets the
same single core and the load never steals from it. Every child is
stopped at the end, also on errors; every wait has a deadline.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from bench import profile as profiler
from bench import report
from bench.procs import PYTHON, ROOT, Child, NotReady, busy_seconds, children_cpu_seconds, cpu_seconds, free_port, http_json, run_json
from bench.servers import CEILING, CEILING_RELAY, CEILING_STOCK, PSEUDO_APPS, SERVERS, TARGETS, Target, clean_env

BENCH_DIR = ROOT / "bench"


@dataclass
class Settings:
    """What one run measures; the presets below fill it, flags override."""

    preset: str = "full"
    concurrency: list[int] = field(default_factory=lambda: [1, 50, 200, 400, 1000])
    tokens: int = 50
    interval: float = 0.02
    duration: float = 6.0
    # At the judged C the closed loop runs longer: a slow app's stream lasts about 7 s there, and in a
    # 6 s loop its users never start a second one, so its TTFT would sample only the first burst,
    # never a new stream waiting behind running ones (what the TTFT target is about).
    judged_duration: float = 15.0
    apps: list[str] = field(default_factory=lambda: [*TARGETS, *PSEUDO_APPS])
    target_c: int = 400  # where the ratios are judged
    target_rounds: int = 3  # rounds of service / FastAPI / ceiling at target_c (the sweep is round 1); verdicts use medians
    scale_streams: int = 5000
    scale_tokens: int = 20
    scale_interval: float = 0.25
    scale_ramp: float = 2.5
    cold_concurrency: int = 200
    cold_bursts: int = 3
    cold_boots: int = 3  # fresh workers in the cold-start scenario
    upstream_check: bool = True
    profile_c: int = 0  # 0: no profiling run
    profile_seconds: float = 20.0
    stream_timeout: float = 240.0
    pin: bool = True
    out_dir: Path = BENCH_DIR
    service_env: dict[str, str] = field(default_factory=dict)  # A/B a service setting; the ceiling gets it too


PRESETS: dict[str, dict[str, Any]] = {
    "full": {},
    "quick": dict(
        concurrency=[1, 50, 400],
        tokens=20,
        duration=1.5,
        judged_duration=1.5,
        target_rounds=1,
        scale_streams=500,
        scale_tokens=8,
        apps=[*(name for name in TARGETS if name != "flask-floor"), *PSEUDO_APPS],  # the breakdown: full runs
        scale_ramp=0.5,
        cold_concurrency=50,
        cold_bursts=2,
        cold_boots=1,
        profile_seconds=5.0,
        stream_timeout=60.0,
    ),
    "smoke": dict(
        concurrency=[5],
        tokens=5,
        interval=0.01,
        duration=1.0,
        judged_duration=1.0,
        apps=["service", "service-sse"],
        target_c=5,
        target_rounds=1,
        scale_streams=0,
        cold_concurrency=0,
        upstream_check=False,
        stream_timeout=20.0,
    ),
}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Bench:
    """Owns the child processes of one run and the measurements taken with them."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.out = settings.out_dir
        self.logs = self.out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        cpus = sorted(os.sched_getaffinity(0))
        pin = settings.pin and len(cpus) >= 2
        self.app_cpus = [cpus[0]] if pin else None
        self.load_cpus = cpus[1:] if pin else None
        if self.load_cpus:
            os.sched_setaffinity(0, set(self.load_cpus))
        self.children: list[Child] = []
        self.upstream: Child | None = None
        self.scratch = self.logs / "scratch.json"

    # -- processes ----------------------------------------------------------

    def start(self, child: Child, timeout: float = 60.0) -> Child:
        self.children.append(child)  # registered first: stopped even if it never becomes ready
        return child.start(timeout)

    def stop(self, child: Child) -> None:
        child.stop()
        if child in self.children:
            self.children.remove(child)

    def stop_all(self) -> None:
        for child in reversed(self.children):
            try:
                child.stop()
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                log(f"stopping {child.name}: {exc}")
        self.children.clear()

    def start_upstream(self) -> None:
        port = free_port()
        command = [PYTHON, "-m", "bench.upstream", "--port", str(port), "--tokens", str(self.s.tokens), "--interval", str(self.s.interval)]
        self.upstream = self.start(Child("upstream", command, port=port, env=clean_env(""), log_dir=self.logs, cpus=self.load_cpus))

    @property
    def upstream_url(self) -> str:
        assert self.upstream is not None
        return f"{self.upstream.url}/v1"

    def start_server(self, name: str) -> Child:
        threads = max(64, max(self.s.concurrency))
        child = SERVERS[name](self.upstream_url, self.logs, self.app_cpus, threads=threads, service_env=self.s.service_env)
        return self.start(child)

    # -- the upstream ---------------------------------------------------------

    def configure_upstream(self, tokens: int, interval: float) -> None:
        assert self.upstream is not None
        status, body = http_json(self.upstream.port, "POST", "/bench/config", {"tokens": tokens, "interval": interval, "ttft": 0})
        if status != 200:
            raise RuntimeError(f"upstream refused its config: {body}")

    def upstream_stats(self, reset: bool = False) -> dict[str, Any]:
        assert self.upstream is not None
        status, body = http_json(self.upstream.port, "POST" if reset else "GET", "/bench/stats/reset" if reset else "/bench/stats")
        if status != 200:
            raise RuntimeError(f"upstream stats: {status} {body}")
        return body  # type: ignore[no-any-return]

    @property
    def app_cpu(self) -> int | None:
        return self.app_cpus[0] if self.app_cpus else None

    def wait_quiet(self, timeout: float = 30.0, threshold: float = 0.05) -> None:
        """Wait (bounded) until the app's CPU is idle: other processes on it would skew the next measurement."""
        if self.app_cpu is None:
            return
        deadline = time.monotonic() + timeout
        while True:
            before, started = busy_seconds(self.app_cpu), time.monotonic()
            time.sleep(0.25)
            share = (busy_seconds(self.app_cpu) - before) / (time.monotonic() - started)
            if share <= threshold:
                return
            if time.monotonic() >= deadline:
                log(f"warning: CPU {self.app_cpu} still {share:.0%} busy with other processes after {timeout:g}s; measuring anyway")
                return

    def foreign(self, busy_before: float, ours: float, elapsed: float) -> float | None:
        """Percent of the app's CPU used by anything but the measured app during a run (None if not pinned)."""
        if self.app_cpu is None or elapsed <= 0:
            return None
        return round(max(0.0, 100 * (busy_seconds(self.app_cpu) - busy_before - ours) / elapsed), 1)

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Poll until no stream is open upstream: the previous run has fully drained."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.upstream_stats()["active"] == 0:
                return
            time.sleep(0.1)
        log(f"warning: upstream still has {self.upstream_stats()['active']} open streams after {timeout:g}s")

    # -- measurements -------------------------------------------------------

    def load(
        self,
        server: Child,
        target: Target,
        concurrency: int,
        *,
        burst: bool = False,
        ramp: float = 0.0,
        tokens: int | None = None,
        interval: float | None = None,
        rss_pid: int = 0,
        keep_records: bool = False,
        duration: float | None = None,
        during: Callable[[], Any] | None = None,
    ) -> dict[str, Any]:
        """One load-generator run against ``server`` with CPU and upstream accounting around it."""
        tokens = tokens or self.s.tokens
        interval = interval or self.s.interval
        duration = duration or self.s.duration
        command = [
            PYTHON,
            "-m",
            "bench.load",
            "--url",
            server.url,
            "--path",
            target.path,
            "--mode",
            target.mode,
            "--app",
            target.name,
            "--concurrency",
            str(concurrency),
            "--tokens",
            str(tokens),
            "--interval",
            str(interval),
            "--stream-timeout",
            str(self.s.stream_timeout),
            "--rss-pid",
            str(rss_pid),
        ]
        command += ["--burst", "--ramp", str(ramp)] if burst else ["--duration", str(duration)]
        if keep_records:
            command.append("--keep-records")
        self.wait_idle()
        self.wait_quiet()
        self.upstream_stats(reset=True)
        assert self.upstream is not None
        watched = {
            "app": rss_pid or (server.popen.pid if server.popen else 0),
            "upstream": self.upstream.popen.pid if self.upstream.popen else 0,
        }
        master = server.popen.pid if server.popen and server.popen.pid != watched["app"] else 0
        cpu0 = {k: cpu_seconds(pid) for k, pid in watched.items()}
        master0 = cpu_seconds(master) if master else 0.0
        busy0 = busy_seconds(self.app_cpu) if self.app_cpu is not None else 0.0
        started = time.monotonic()
        if during is not None:
            during()  # e.g. attach the profiler just before the load starts
        limit = (ramp if burst else duration) + self.s.stream_timeout + 60
        result = run_json(command, out=self.scratch, timeout=limit, env=clean_env(""), cpus=self.load_cpus)
        elapsed = time.monotonic() - started
        app_cpu = cpu_seconds(watched["app"]) - cpu0["app"]
        result["app_cpu_pct"] = round(100 * app_cpu / elapsed, 1)
        ours = app_cpu + (cpu_seconds(master) - master0 if master else 0.0)
        result["foreign_cpu_pct"] = self.foreign(busy0, ours, elapsed)
        result["upstream_cpu_pct"] = round(100 * (cpu_seconds(watched["upstream"]) - cpu0["upstream"]) / elapsed, 1)
        result["upstream"] = self.upstream_stats()
        return result

    def ceiling(
        self,
        concurrency: int,
        *,
        burst: bool = False,
        ramp: float = 0.0,
        tokens: int | None = None,
        interval: float | None = None,
        through: str = "model",
        client: str = "service",
        duration: float | None = None,
    ) -> dict[str, Any]:
        """The bare client in one process on the apps' CPU: closed loop like the sweep, or one burst."""
        duration = duration or self.s.duration
        self.wait_idle()
        self.wait_quiet()
        self.upstream_stats(reset=True)
        command = [
            PYTHON,
            "-m",
            "bench.ceiling",
            "--concurrency",
            str(concurrency),
            "--duration",
            str(duration),
            "--tokens",
            str(tokens or self.s.tokens),
            "--stream-timeout",
            str(self.s.stream_timeout),
            "--interval",
            str(interval or self.s.interval),
            "--through",
            through,
            "--client",
            client,
        ]
        if burst:
            command += ["--burst", "--ramp", str(ramp)]
        busy0, children0, started = (
            (busy_seconds(self.app_cpu) if self.app_cpu is not None else 0.0),
            children_cpu_seconds(),
            time.monotonic(),
        )
        result = run_json(
            command,
            out=self.scratch,
            timeout=duration + ramp + self.s.stream_timeout + 90,
            env=clean_env(self.upstream_url, self.s.service_env),
            cpus=self.app_cpus,
        )
        result["foreign_cpu_pct"] = self.foreign(busy0, children_cpu_seconds() - children0, time.monotonic() - started)
        result["app_cpu_pct"] = round(100 * result["cpu_s"] / max(1e-9, result["wall_s"]), 1)
        result["upstream"] = self.upstream_stats()
        return result

    def warm_up(self, server: Child, target: Target) -> None:
        """A few streams first, so no app pays its first-request costs inside the sweep (cold start is measured apart)."""
        result = self.load(server, target, 10, burst=True)
        if result["error_total"]:
            raise RuntimeError(f"{target.name} failed its warm-up: {result['errors']}; see {server.log_path}")

    # -- scenarios ------------------------------------------------------------

    def upstream_capacity(self) -> dict[str, Any]:
        """The upstream alone at the judged C: it must deliver far more than any app can take.

        The load generator parses every OpenAI chunk here and shares the upstream's CPU, so this is a floor
        on what the upstream can do, not its limit.
        """
        assert self.upstream is not None
        c = self.judged_c
        log(f"upstream alone, C={c}")
        target = Target("upstream", "upstream", "/v1/chat/completions", "openai", "upstream alone")
        result = self.load(self.upstream, target, c, rss_pid=self.upstream.popen.pid if self.upstream.popen else 0)
        result["ideal_tokens_per_s"] = round(c / self.s.interval, 1)
        return result

    def sweep(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Every app at every C, one at a time; then extra rounds at the judged C. Returns (sweep, extra rounds)."""
        targets = [TARGETS[name] for name in self.s.apps if name in TARGETS]
        servers: dict[str, Child] = {}
        rows: list[dict[str, Any]] = []
        rounds: list[dict[str, Any]] = []
        try:
            for target in targets:
                if target.server not in servers:
                    log(f"starting {target.server}")
                    servers[target.server] = self.start_server(target.server)
                self.warm_up(servers[target.server], target)
            for c in self.s.concurrency:
                rows += self.round(c, targets, servers, "sweep")
            judged = self.judged_c
            judged_targets = [t for t in targets if t.name in ("service", "fastapi", "flask-floor")]
            for number in range(2, self.s.target_rounds + 1):
                # Even rounds run the ceilings first: the machine's speed drifts, and a fixed
                # order would hand the drift to the same side of every ratio.
                for row in self.round(judged, judged_targets, servers, f"round {number}", ceilings_first=number % 2 == 0):
                    rounds.append({**row, "round": number})
        finally:
            for server in servers.values():
                self.stop(server)
        return rows, rounds

    @property
    def judged_c(self) -> int:
        """The swept C nearest ``target_c``, where the issue's ratios are judged."""
        return report.nearest_c(self.s.concurrency, self.s.target_c)

    def duration_at(self, c: int) -> float:
        return self.s.judged_duration if c == self.judged_c else self.s.duration

    def round(
        self, c: int, targets: list[Target], servers: dict[str, Child], what: str, ceilings_first: bool = False
    ) -> list[dict[str, Any]]:
        """Each target at C and each in-process loop at C, one after the other."""

        def served() -> list[dict[str, Any]]:
            rows = []
            for target in targets:
                server = servers[target.server]
                log(f"{what} C={c} {target.name}")
                row = self.load(server, target, c, rss_pid=server.worker_pid(), duration=self.duration_at(c))
                rows.append(row)
                log(
                    f"  {row['tokens_per_s']} tok/s, TTFT p99 {row['ttft_p99_ms']} ms, errors {row['error_total']}, "
                    f"cpu {row['app_cpu_pct']}%"
                )
            return rows

        def in_process() -> list[dict[str, Any]]:
            rows = []
            for app, through, client in (
                (CEILING, "model", "service"),
                (CEILING_RELAY, "relay", "service"),
                (CEILING_STOCK, "model", "stock"),
            ):
                if app in self.s.apps:
                    log(f"{what} C={c} {app}")
                    row = self.ceiling(c, through=through, client=client, duration=self.duration_at(c))
                    rows.append(row)
                    log(f"  {row['tokens_per_s']} tok/s")
            return rows

        return [*in_process(), *served()] if ceilings_first else [*served(), *in_process()]

    def profile(self) -> dict[str, Any]:
        """The service at ``profile_c`` with py-spy attached (a run of its own: the sweep stays unperturbed)."""
        if profiler.py_spy() is None:
            return {"error": "py-spy is not installed (pip install -r bench/requirements.txt)"}
        server = self.start_server("service")
        try:
            target = TARGETS["service"]
            self.warm_up(server, target)
            pid = server.worker_pid()
            seconds = self.s.profile_seconds
            log(f"profiling the service worker (pid {pid}) at C={self.s.profile_c} for {seconds:g}s")
            started: list[Any] = []

            def attach() -> None:
                started.extend(profiler.start(pid, seconds, self.out, self.load_cpus))

            row = self.load(server, target, self.s.profile_c, rss_pid=pid, duration=seconds + 1, during=attach)
            profiler.finish(started, timeout=seconds + 30)
        finally:
            self.stop(server)
        stacks = self.out / "profile-stacks.txt"
        if not stacks.exists():
            return {"error": f"py-spy wrote no stacks; see {self.out / 'profile-stacks.txt.log'}"}
        summary = profiler.summarize(stacks)
        summary.update(
            concurrency=self.s.profile_c,
            seconds=seconds,
            tokens_per_s=row["tokens_per_s"],
            ttft_p99_ms=row["ttft_p99_ms"],
            svg="profile.svg",
        )
        return summary

    def cold_start(self) -> dict[str, Any]:
        """Fresh workers: each one's first burst, then the same burst again, TTFT of each.

        A burst's TTFT p99 varies by 2-3x between identical warm bursts (how
        its set-up interleaves with its first tokens), so one boot decides
        nothing: ``cold_boots`` boots, judged on medians.
        """
        c = self.s.cold_concurrency
        boots = []
        for boot in range(self.s.cold_boots):
            server = self.start_server("service")
            try:
                pid = server.worker_pid()
                bursts = []
                for index in range(self.s.cold_bursts):
                    log(f"cold start: boot {boot + 1}, burst {index + 1} of {c} streams")
                    row = self.load(server, TARGETS["service"], c, burst=True, rss_pid=pid)
                    bursts.append({k: row[k] for k in ("ttft_p50_ms", "ttft_p99_ms", "tokens_per_s", "error_total", "errors", "wall_s")})
                boots.append(bursts)
            finally:
                self.stop(server)
        return {"concurrency": c, "bursts": boots[0], "boots": boots}

    def scale(self) -> dict[str, Any]:
        """Thousands of slow streams at once on one fresh worker; RSS per open stream."""
        n = self.s.scale_streams
        self.configure_upstream(self.s.scale_tokens, self.s.scale_interval)
        server = self.start_server("service")
        try:
            pid = server.worker_pid()
            self.load(server, TARGETS["service"], 20, burst=True, tokens=self.s.scale_tokens, interval=self.s.scale_interval)
            log(f"scale: {n} streams of {self.s.scale_tokens} tokens every {self.s.scale_interval * 1000:g} ms")
            row = self.load(
                server,
                TARGETS["service"],
                n,
                burst=True,
                ramp=self.s.scale_ramp,
                tokens=self.s.scale_tokens,
                interval=self.s.scale_interval,
                rss_pid=pid,
            )
            log(f"  {row['completed']}/{n} completed in {row['wall_s']}s, RSS/stream {row['rss_per_stream_kb']} KB")
            self.stop(server)
            if CEILING in self.s.apps:
                log(f"scale: the bare ceiling with the same {n} streams")
                row["ceiling"] = self.ceiling(
                    n, burst=True, ramp=self.s.scale_ramp, tokens=self.s.scale_tokens, interval=self.s.scale_interval
                )
                log(f"  {row['ceiling']['completed']}/{n} completed in {row['ceiling']['wall_s']}s")
        finally:
            self.stop(server)
            self.configure_upstream(self.s.tokens, self.s.interval)
        row.update(streams_target=n, tokens=self.s.scale_tokens, interval_ms=round(self.s.scale_interval * 1000, 1))
        return row


def parse_args(argv: list[str] | None) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_const", const="quick", dest="preset", help="under two minutes")
    mode.add_argument("--smoke", action="store_const", const="smoke", dest="preset", help="seconds; for the e2e test")
    parser.add_argument("--concurrency", help="comma-separated C values, e.g. 1,50,200,400,1000")
    parser.add_argument("--tokens", type=int, help="tokens per stream in the sweep")
    parser.add_argument("--interval", type=float, help="seconds between upstream tokens in the sweep")
    parser.add_argument("--duration", type=float, help="seconds of closed-loop load per (app, C)")
    parser.add_argument(
        "--judged-duration",
        type=float,
        help="the same at the judged C (full: 15, so every app's users start a second stream; default: --duration if given)",
    )
    parser.add_argument("--apps", help=f"comma-separated, from {', '.join([*TARGETS, *PSEUDO_APPS])}")
    parser.add_argument("--target-c", type=int, help="C at which the issue's ratios are judged (default 400)")
    parser.add_argument(
        "--rounds",
        type=int,
        dest="target_rounds",
        help="rounds of service, FastAPI and ceiling at the judged C; verdicts use the medians (full: 3)",
    )
    parser.add_argument("--scale-streams", type=int, help="streams in the scale scenario (0 skips it)")
    parser.add_argument("--scale-tokens", type=int)
    parser.add_argument("--scale-interval", type=float)
    parser.add_argument("--cold-concurrency", type=int, help="burst size of the cold-start scenario (0 skips it)")
    parser.add_argument(
        "--profile",
        type=int,
        nargs="?",
        const=400,
        default=None,
        metavar="C",
        help="also profile the service worker with py-spy at C (default 400) in a run of its own",
    )
    parser.add_argument("--no-upstream-check", action="store_true", help="skip the upstream-alone capacity run")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the app to one CPU and the load to the others")
    parser.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="WEBAPP_X=value",
        help="a service setting for this run (repeatable), e.g. WEBAPP_UPSTREAM_RAW_CHUNKS=false; the ceiling gets it too",
    )
    parser.add_argument("--out-dir", type=Path, help="where RESULTS.md, results.png and results.json go (default bench/)")
    args = parser.parse_args(argv)
    preset = args.preset or "full"
    settings = replace(Settings(preset=preset), **PRESETS[preset])
    overrides: dict[str, Any] = {}
    if args.concurrency:
        overrides["concurrency"] = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if args.apps:
        apps = [a.strip() for a in args.apps.split(",") if a.strip()]
        unknown = set(apps) - {*TARGETS, *PSEUDO_APPS}
        if unknown:
            parser.error(f"unknown apps: {', '.join(sorted(unknown))}")
        overrides["apps"] = apps
    for name in (
        "tokens",
        "interval",
        "duration",
        "judged_duration",
        "target_c",
        "target_rounds",
        "scale_streams",
        "scale_tokens",
        "scale_interval",
        "cold_concurrency",
    ):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if args.duration is not None and args.judged_duration is None:
        overrides["judged_duration"] = args.duration  # one duration asked for: the same everywhere
    if args.profile is not None:
        overrides["profile_c"] = args.profile
    if args.no_upstream_check:
        overrides["upstream_check"] = False
    if args.no_pin:
        overrides["pin"] = False
    if args.service_env:
        pairs = [item.partition("=") for item in args.service_env]
        bad = [key for key, eq, _ in pairs if not eq or not key.startswith("WEBAPP_")]
        if bad:
            parser.error(f"--service-env needs WEBAPP_NAME=value, got: {', '.join(bad)}")
        overrides["service_env"] = {key: value for key, _, value in pairs}
    if args.out_dir:
        overrides["out_dir"] = args.out_dir.resolve()
    settings = replace(settings, **overrides)
    if not settings.concurrency or min(settings.concurrency) < 1:
        parser.error("--concurrency needs positive values")
    return settings


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally that stops every child


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    settings = parse_args(argv)
    command = "python -m bench" + ("" if argv is None and len(sys.argv) <= 1 else " " + " ".join(sys.argv[1:] if argv is None else argv))
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    bench = Bench(settings)
    results: dict[str, Any] = {
        "command": command,
        "settings": {**asdict(settings), "out_dir": str(settings.out_dir)},
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    began = time.monotonic()
    try:
        bench.start_upstream()
        results["machine"] = report.machine(bench.app_cpus, bench.load_cpus)
        if settings.upstream_check:
            results["upstream_check"] = bench.upstream_capacity()
        results["sweep"], results["rounds"] = bench.sweep()
        if settings.profile_c:
            results["profile"] = bench.profile()
        if settings.cold_concurrency:
            results["cold"] = bench.cold_start()
        if settings.scale_streams:
            results["scale"] = bench.scale()
    except NotReady as exc:
        log(f"FAILED: a server did not become ready: {exc}")
        raise
    finally:
        bench.stop_all()
    results["elapsed_s"] = round(time.monotonic() - began, 1)
    paths = report.write(results, settings.out_dir)
    log(f"done in {results['elapsed_s']}s: {', '.join(str(p) for p in paths)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
