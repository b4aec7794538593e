"""``python -m bench.agent_server``: the Agent Server API, ``langgraph dev`` and uncut side by side, in one run.

The same graph (``bench/apps/agent_graph.py``: ``create_agent`` with one
tool on the scripted model, 0.3 s to each model call's first chunk, 20 ms
between chunks, a 50-word answer after one tool call) served by:

- ``langgraph-dev``: ``langgraph dev --no-browser --no-reload --host 127.0.0.1
  --port P --n-jobs-per-worker 1000 --config langgraph.json``, run in
  ``bench/apps`` (LangGraph's own server, in-memory runtime; the anchor);
- ``uncut``: ``bench/apps/agent_server_app.py`` (``AgentServer`` on an
  ``InMemorySaver``, ``agent_server_blueprint``) under one gunicorn gevent
  worker with ``conf/gunicorn.conf.py``.

Scenarios, each server in turn (the order alternates between scenarios),
a fresh server for each (``--quick``: C=100 only, a burst of 400, one server per app for all):

- ``single``: one run at a time, alone: the unloaded first token;
- ``closed`` at C = 100 and 400: C users, each creating a thread and
  streaming a run on it, the next as soon as the last ends, for D seconds;
- ``burst``: 1000 users at once, one run each: how many are answered,
  refused (``503``) and retried, timed out or failed.

Clients retry refusals as the SDKs do (up to 2 retries, honouring
``Retry-After``; ``bench/agent_load.py``); a refusal that ends in no answer
counts against the server. Beside every load run a separate sampler process
starts a single run every 0.5 s: its first token must agree with the load
generator's, or the generator was the bottleneck. On two or more cores the
server is pinned to CPU 0 and the load, the sampler and this process to the
others. Writes ``bench/AGENT_SERVER.md`` and ``bench/agent_server.json``;
every child is stopped at the end, on errors and on SIGTERM too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping, Sequence

import psutil

from bench.procs import PYTHON, ROOT, Child, NotReady, busy_seconds, child_setup, free_port, run_json

BENCH_DIR = ROOT / "bench"
APPS_DIR = BENCH_DIR / "apps"
LANGGRAPH = Path(sys.executable).with_name("langgraph")
SERVER_NAMES = ("langgraph-dev", "uncut")
LABELS = {"langgraph-dev": "langgraph dev", "uncut": "uncut (1 gevent worker)"}
PACKAGES = (
    "langgraph-api",
    "langgraph-cli",
    "langgraph-runtime-inmem",
    "langgraph",
    "langgraph-sdk",
    "langchain",
    "langchain-core",
    "uvicorn",
    "starlette",
    "sse-starlette",
    "blockbuster",
    "flask",
    "werkzeug",
    "gunicorn",
    "gevent",
    "greenlet",
    "httpx",
    "psutil",
)
DROPPED_ENV = ("WEBAPP_", "OPENAI_", "GUNICORN_", "LANGCHAIN_", "LANGSMITH_", "LANGGRAPH_", "UNCUT_", "BENCH_", "PROMETHEUS_")


@dataclass
class Settings:
    preset: str = "full"
    concurrency: list[int] = field(default_factory=lambda: [100, 400])
    duration: float = 30.0  # each closed loop's seconds of new runs
    burst: int = 1000
    single_seconds: float = 10.0  # the unloaded sampler's run
    sampler_rate: float = 2.0  # the sampler's run starts per second (single: at most, one run at a time)
    burst_sampler_seconds: float = 20.0
    max_retries: int = 2
    stream_timeout: float = 120.0  # each request, its whole stream included
    quiet_timeout: float = 15.0  # how long to wait for the server's CPU to go idle before each measurement
    fresh: bool = True  # a fresh server for every scenario
    servers: list[str] = field(default_factory=lambda: list(SERVER_NAMES))
    pin: bool = True
    out_dir: Path = BENCH_DIR
    env: dict[str, dict[str, str]] = field(default_factory=lambda: {"langgraph-dev": {}, "uncut": {}})


PRESETS: dict[str, dict[str, Any]] = {
    "full": {},
    # Every kind of scenario, smaller (C=100 only, a burst of 400, 5 s loops), one server per app: about two minutes.
    # The same timeouts as the full run, so what happens past capacity compares.
    "quick": dict(
        concurrency=[100], duration=5.0, burst=400, single_seconds=4.0, burst_sampler_seconds=8.0, quiet_timeout=3.0, fresh=False
    ),
}


def log(message: str) -> None:
    print(f"[agent-bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class AppChild(Child):
    """A ``Child`` started in a directory of its own choosing (``langgraph dev`` reads its graph paths from there)."""

    def __init__(self, *args: Any, cwd: Path = ROOT, base_path: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cwd = cwd
        self.base_path = base_path
        self.started_s: float | None = None

    @property
    def api(self) -> str:
        return self.url + self.base_path

    def start(self, timeout: float = 90.0) -> "AppChild":
        began = time.monotonic()
        with open(self.log_path, "ab") as log_file:
            self.popen = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=child_setup(self.cpus),
            )
        self.wait_ready(timeout)
        self.started_s = round(time.monotonic() - began, 2)
        return self


def base_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(DROPPED_ENV)}
    env.update(PYTHONUNBUFFERED="1", LANGSMITH_TRACING="false", LANGCHAIN_TRACING_V2="false")
    env.update(extra)
    return env


def langgraph_dev(logs: Path, cpus: Sequence[int] | None, env: Mapping[str, str]) -> AppChild:
    if not LANGGRAPH.exists():
        raise SystemExit(f"{LANGGRAPH} not found: pip install -r bench/requirements.txt (langgraph-cli[inmem])")
    # langgraph dev keeps its state in .langgraph_api/ of its directory and loads it at start: each server starts empty.
    shutil.rmtree(APPS_DIR / ".langgraph_api", ignore_errors=True)
    port = free_port()
    command = [
        str(LANGGRAPH),
        "dev",
        "--no-browser",
        "--no-reload",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n-jobs-per-worker",
        "1000",
        "--config",
        "langgraph.json",
    ]
    quiet = {"LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGGRAPH_NO_VERSION_CHECK": "true", **env}
    return AppChild("langgraph-dev", command, port=port, env=base_env(quiet), log_dir=logs, cpus=cpus, ready_path="/ok", cwd=APPS_DIR)


def uncut(logs: Path, cpus: Sequence[int] | None, env: Mapping[str, str]) -> AppChild:
    port = free_port()
    metrics = logs / "uncut-metrics"
    metrics.mkdir(parents=True, exist_ok=True)
    settings = {
        "GUNICORN_WORKERS": "1",
        "GUNICORN_WORKER_CONNECTIONS": "20000",
        "GUNICORN_ACCESSLOG": "",
        "GUNICORN_LOGLEVEL": "warning",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        **env,
    }
    command = [PYTHON, "-m", "gunicorn", "-c", "conf/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "bench.apps.agent_server_app:app"]
    return AppChild(
        "uncut", command, port=port, env=base_env(settings), log_dir=logs, cpus=cpus, ready_path="/healthz", base_path="/langgraph"
    )


STARTERS = {"langgraph-dev": langgraph_dev, "uncut": uncut}


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def tree_cpu(pid: int) -> float:
    total = 0.0
    for process in tree(pid):
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def tree_rss(pid: int) -> int:
    total = 0
    for process in tree(pid):
        try:
            total += process.memory_info().rss
        except psutil.Error:
            pass
    return total


class AgentBench:
    def __init__(self, settings: Settings) -> None:
        from bench.apps.agent_graph import INTERVAL, PROMPT, TOKENS, TTFT, expected_answer, same_chunks_as_stock

        same_chunks_as_stock()  # the bench model streams what uncut.scripted.ScriptedChatModel streams
        self.s = settings
        self.logs = settings.out_dir / "logs" / "agent-server"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.scratch = self.logs / "load.json"
        self.sampler_out = self.logs / "sampler.json"
        cpus = sorted(os.sched_getaffinity(0))
        pin = settings.pin and len(cpus) >= 2
        self.app_cpus = [cpus[0]] if pin else None
        self.load_cpus = cpus[1:] if pin else None
        if self.load_cpus:
            os.sched_setaffinity(0, set(self.load_cpus))
        self.children: list[AppChild] = []
        self.model = {"ttft_s": TTFT, "interval_s": INTERVAL, "tokens": TOKENS, "prompt": PROMPT}
        self.expected = expected_answer()
        self.tokens = TOKENS
        self.prompt = PROMPT
        self.rows: list[dict[str, Any]] = []

    # -- processes --------------------------------------------------------------------

    def start(self, name: str) -> AppChild:
        child = STARTERS[name](self.logs, self.app_cpus, self.s.env.get(name, {}))
        self.children.append(child)  # registered first: stopped even if it never becomes ready
        log(f"starting {name}")
        child.start()
        log(f"  ready in {child.started_s} s")
        self.warm_up(child)
        return child

    def stop(self, child: AppChild) -> None:
        child.stop()
        if child in self.children:
            self.children.remove(child)
        if child.name == "langgraph-dev":
            shutil.rmtree(APPS_DIR / ".langgraph_api", ignore_errors=True)

    def stop_all(self) -> None:
        for child in reversed(self.children):
            try:
                self.stop(child)
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                log(f"stopping {child.name}: {exc}")
        self.children.clear()

    # -- measurements -----------------------------------------------------------------

    def load_command(
        self, child: AppChild, shape: str, *, concurrency: int = 1, duration: float = 0.0, rss: bool = False, label: str = ""
    ) -> list[str]:
        command = [
            PYTHON,
            "-m",
            "bench.agent_load",
            "--url",
            child.api,
            "--shape",
            shape,
            "--concurrency",
            str(concurrency),
            "--duration",
            str(duration),
            "--rate",
            str(self.s.sampler_rate),
            "--max-retries",
            str(self.s.max_retries),
            "--stream-timeout",
            str(self.s.stream_timeout),
            "--prompt",
            self.prompt,
            "--expected",
            self.expected,
            "--tokens",
            str(self.tokens),
            "--label",
            label,
        ]
        if rss and child.popen is not None:
            command += ["--rss-pid", str(child.popen.pid)]
        return command

    def run_load(self, command: list[str], out: Path, limit: float) -> dict[str, Any]:
        return run_json(command, out=out, timeout=limit, env=base_env({}), cpus=self.load_cpus)

    def limit(self, duration: float) -> float:
        return duration + (self.s.max_retries + 1) * 2 * self.s.stream_timeout + self.s.max_retries * 60 + 60

    def warm_up(self, child: AppChild) -> None:
        """Ten runs at once first, so neither server pays its first-request costs in a measurement."""
        result = self.run_load(self.load_command(child, "burst", concurrency=10, label="warm-up"), self.scratch, self.limit(0))
        if result["answered"] != result["runs"]:
            raise RuntimeError(f"{child.name} failed its warm-up: {result['outcomes']} {result['errors']}; see {child.log_path}")

    def wait_quiet(self, threshold: float = 0.05) -> float | None:
        """Wait (bounded) until the server's CPU is idle; returns its busy share when the wait ended."""
        if not self.app_cpus:
            return None
        deadline = time.monotonic() + self.s.quiet_timeout
        while True:
            before, started = busy_seconds(self.app_cpus[0]), time.monotonic()
            time.sleep(0.25)
            share = (busy_seconds(self.app_cpus[0]) - before) / (time.monotonic() - started)
            if share <= threshold or time.monotonic() >= deadline:
                if share > threshold:
                    log(f"  warning: CPU {self.app_cpus[0]} still {share:.0%} busy (other processes); measuring anyway")
                return round(100 * share, 1)

    def measure(self, child: AppChild, scenario: str, concurrency: int) -> dict[str, Any]:
        assert child.popen is not None
        pid = child.popen.pid
        quiet_pct = self.wait_quiet()
        load_avg = os.getloadavg()
        label = f"{child.name} {scenario}" + (f" C={concurrency}" if scenario != "single" else "")
        log(label)
        sampler: subprocess.Popen[bytes] | None = None
        self.sampler_out.unlink(missing_ok=True)
        if scenario == "single":
            command = self.load_command(child, "single", duration=self.s.single_seconds, rss=True, label=label)
            seconds = self.s.single_seconds
        else:
            shape = "closed" if scenario == "closed" else "burst"
            seconds = self.s.duration if scenario == "closed" else self.s.burst_sampler_seconds
            command = self.load_command(child, shape, concurrency=concurrency, duration=self.s.duration, rss=True, label=label)
            sampler = subprocess.Popen(
                [*self.load_command(child, "sampler", duration=seconds, label=f"{label} sampler"), "--out", str(self.sampler_out)],
                cwd=ROOT,
                env=base_env({}),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=child_setup(self.load_cpus),
            )
        cpu0, busy0, started = tree_cpu(pid), (busy_seconds(self.app_cpus[0]) if self.app_cpus else 0.0), time.monotonic()
        try:
            result = self.run_load(command, self.scratch, self.limit(seconds))
            elapsed = time.monotonic() - started
            server_cpu = tree_cpu(pid) - cpu0
            foreign = None
            if self.app_cpus:
                foreign = round(max(0.0, 100 * (busy_seconds(self.app_cpus[0]) - busy0 - server_cpu) / elapsed), 1)
            sampled: dict[str, Any] = {}
            if sampler is not None:
                try:
                    sampler.wait(timeout=self.limit(seconds))
                except subprocess.TimeoutExpired:
                    log("  warning: the sampler overran its limit; stopped")
                if self.sampler_out.exists():
                    sampled = json.loads(self.sampler_out.read_text())
        finally:
            if sampler is not None and sampler.poll() is None:
                os.killpg(sampler.pid, signal.SIGKILL)
                sampler.wait(10)
        time.sleep(1.0)
        row = {
            "server": child.name,
            "scenario": scenario,
            "concurrency": concurrency if scenario != "single" else 1,
            **result,
            "server_cpu_s": round(server_cpu, 2),
            "server_cpu_pct": round(100 * server_cpu / elapsed, 1),
            "server_cpu_ms_per_run": round(1000 * server_cpu / result["answered"], 1) if result["answered"] else None,
            "loadgen_cpu_pct": round(100 * result["loadgen_cpu_s"] / max(1e-9, result["wall_s"]), 1),
            "foreign_cpu_pct": foreign,
            "app_cpu_busy_before_pct": quiet_pct,
            "load_average": [round(x, 2) for x in load_avg],
            "rss_after_bytes": tree_rss(pid),
            "server_started_s": child.started_s,
            "elapsed_s": round(elapsed, 1),
            "sampler": {
                k: sampled.get(k)
                for k in (
                    "runs",
                    "answered",
                    "outcomes",
                    "first_token_p50_ms",
                    "first_token_p99_ms",
                    "ttft_admitted_p50_ms",
                    "ttft_admitted_p99_ms",
                    "refused_attempts",
                    "answer_p50_ms",
                )
            }
            if sampled
            else None,
        }
        if row.get("rss_idle_bytes") and result["answered"]:
            row["rss_retained_per_run_kb"] = round((row["rss_after_bytes"] - row["rss_idle_bytes"]) / result["answered"] / 1024, 1)
        self.rows.append(row)
        sample = row["sampler"] or {}
        log(
            f"  {row['answered']}/{row['runs']} answered, {row['runs_per_s']} runs/s, first token p50/p99 "
            f"{row['first_token_p50_ms']}/{row['first_token_p99_ms']} ms (sampler {sample.get('first_token_p50_ms')}/"
            f"{sample.get('first_token_p99_ms')}), refused attempts {row['refused_attempts']}, outcomes {row['outcomes']}, "
            f"server CPU {row['server_cpu_pct']}%, loadgen CPU {row['loadgen_cpu_pct']}%, foreign {foreign}%, "
            f"RSS/open run {row.get('rss_per_open_run_kb')} KB"
        )
        return row

    def scenarios(self) -> list[tuple[str, int]]:
        return [("single", 1), *(("closed", c) for c in self.s.concurrency), *([("burst", self.s.burst)] if self.s.burst else [])]

    def main(self) -> None:
        try:
            if self.s.fresh:
                for index, (scenario, concurrency) in enumerate(self.scenarios()):
                    order = self.s.servers if index % 2 == 0 else self.s.servers[::-1]  # drift lands on both sides
                    for name in order:
                        child = self.start(name)
                        try:
                            self.measure(child, scenario, concurrency)
                        finally:
                            self.stop(child)
            else:
                for name in self.s.servers:
                    child = self.start(name)
                    try:
                        for scenario, concurrency in self.scenarios():
                            self.measure(child, scenario, concurrency)
                    finally:
                        self.stop(child)
        finally:
            self.stop_all()


# -- the report ---------------------------------------------------------------------------


def machine(app_cpus: Sequence[int] | None, load_cpus: Sequence[int] | None) -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "-"
    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "server_cpus": list(app_cpus) if app_cpus else None,
        "load_cpus": list(load_cpus) if load_cpus else None,
    }


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _n(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}" if isinstance(value, (int, float)) else str(value)


def _pair(row: dict[str, Any] | None, a: str, b: str, digits: int = 0) -> str:
    return "–" if row is None else f"{_n(row.get(a), digits)} / {_n(row.get(b), digits)}"


def _mib(value: Any) -> str:
    return "–" if not value else f"{value / 2**20:,.0f}"


def _sampler(row: dict[str, Any] | None) -> str:
    sample = (row or {}).get("sampler") or {}
    if not sample:
        return "–"
    first = f"{_n(sample.get('first_token_p50_ms'))} / {_n(sample.get('first_token_p99_ms'))}"
    return f"{first} ({sample.get('answered')}/{sample.get('runs')})"


def _outcomes(row: dict[str, Any] | None, key: str) -> str:
    return "–" if row is None else _n((row.get("outcomes") or {}).get(key, 0))


def _failed(row: dict[str, Any]) -> int:
    """Runs that ended in an error, a wrong answer, a failed thread creation or a cancelled user."""
    return sum(int(v) for k, v in (row.get("outcomes") or {}).items() if k in ("failed", "thread_failed", "cancelled"))


def _rss(row: dict[str, Any], last: str) -> str:
    return f"{_mib(row.get('rss_idle_bytes'))} → {_mib(row.get('rss_at_peak_bytes'))} → {_mib(row.get(last))}"


def _per_open_run(row: dict[str, Any]) -> str:
    return f"{_n(row.get('rss_per_open_run_kb'))} ({_n(row.get('open_runs_at_peak'))})"


def _refusals(row: dict[str, Any]) -> str:
    return f"{_n(row['refused_attempts'])} ({_n(row['runs_refused_at_least_once'])})"


def table(out: dict[str, Any]) -> str:
    rows = out["rows"]
    servers = out["settings"]["servers"]
    model = out["model"]
    ideal_first = model["ttft_s"] * 2 + out["tool_fragments"] * model["interval_s"]
    ideal_run = ideal_first + (model["tokens"] - 1) * model["interval_s"]

    def find(server: str, scenario: str, c: int | None = None) -> dict[str, Any] | None:
        for row in rows:
            if row["server"] == server and row["scenario"] == scenario and (c is None or row["concurrency"] == c):
                return row
        return None

    m = out["machine"]
    loads = [r["load_average"][0] for r in rows]
    foreign = [r["foreign_cpu_pct"] for r in rows if r.get("foreign_cpu_pct") is not None]
    preliminary = out["preliminary"]
    lines = ["# Agent Server API: `langgraph dev` and uncut side by side", ""]
    if out.get("busy") and not preliminary:
        lines += [
            "> **Warning**: the machine was not quiet (see the load average and the other processes' share of the server's "
            "CPU below); the numbers may be skewed.",
            "",
        ]
    if preliminary:
        lines += [
            f"> **PRELIMINARY** ({out['settings']['preset']} preset{', on a busy machine' if out.get('busy') else ''}). "
            "These numbers validate the harness; they are not the benchmark (short loops, smaller loads, on a machine shared with "
            "other work). "
            "The full run on a quiet machine replaces this file: `" + out["full_command"] + "`.",
            "",
        ]
    lines += [
        f"Command: `{out['command']}` ({out['elapsed_s']:.0f} s, {out['started']}, commit {out.get('commit') or '?'}).",
        "",
        f"Machine: {m['cpus']} × {m['cpu_model']}, {m['ram_gib']} GiB, Python {m['python']}, {m['platform']}. "
        + (
            f"Each server pinned to CPU {m['server_cpus']}, load generator, sampler and harness to CPU {m['load_cpus']}."
            if m["server_cpus"]
            else "Not pinned."
        )
        + (
            f" 1-minute load average before the measurements: {min(loads):.1f} to {max(loads):.1f} (2 would be both cores busy); "
            f"other processes took {min(foreign):.0f} to {max(foreign):.0f} % of the server's CPU during them."
            if loads and foreign
            else ""
        ),
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in m["packages"].items()) + ".",
        "",
        "## What is served",
        "",
        f"The same graph on both: `bench/apps/agent_graph.py`, `create_agent` with one tool (`get_weather`) on the scripted model "
        f"(`BenchScriptedModel`, `uncut.scripted.ScriptedChatModel`'s chunks with a native async path). Each run: the model "
        f"waits {model['ttft_s']} s and calls the tool ({out['tool_fragments']} argument fragments "
        f"{model['interval_s'] * 1000:g} ms apart), the tool answers, the model waits {model['ttft_s']} s and answers in "
        f"{model['tokens']} words {model['interval_s'] * 1000:g} ms apart. "
        f"Unloaded ideal: first token {ideal_first * 1000:,.0f} ms after the run request, whole run {ideal_run * 1000:,.0f} ms; "
        f"so a closed loop of C users can do at most C / {ideal_run:.2f} s runs/s.",
        "",
        "- **langgraph dev**: `langgraph dev --no-browser --no-reload --host 127.0.0.1 --port P --n-jobs-per-worker 1000 "
        "--config langgraph.json` in `bench/apps` (langgraph-api's in-memory runtime: one process, its checkpointer, its run queue).",
        '- **uncut**: `bench/apps/agent_server_app.py`: `AgentServer({"agent": graph}, Streams(StreamOptions()), '
        "checkpointer=InMemorySaver())` mounted with `agent_server_blueprint` at `/langgraph`, under `gunicorn -c conf/gunicorn.conf.py` "
        "with one gevent worker (`GUNICORN_WORKERS=1`, `GUNICORN_WORKER_CONNECTIONS=20000`). The library's default streaming options, "
        "adaptive admission included.",
        "",
        f"Each client creates a thread (`POST /threads`), then streams a run on it (`POST /threads/{{id}}/runs/stream`, "
        f"`stream_mode` `messages-tuple`, the body `langgraph_sdk` sends), with its own `httpx.AsyncClient`. A refusal (`503`/`429`), "
        f"a server error or a request that got no byte is retried up to {out['settings']['max_retries']} times after the server's "
        "`Retry-After` (else 0.5 s doubling), as the openai SDKs do. "
        + (
            "A fresh server for every scenario, after ten warm-up runs."
            if out["settings"]["fresh"]
            else "One server per app for all scenarios (quick preset), after ten warm-up runs: later scenarios run on the threads "
            "earlier ones left."
        ),
        "",
        "## Closed loops",
        "",
        f"C users for {out['settings']['duration']:g} s, each starting its next run when the last ends; then the runs still open finish.",
        "",
    ]
    header = "| | " + " | ".join(f"C={c} {LABELS[s]}" for c in out["settings"]["concurrency"] for s in servers) + " |"
    cells = [(find(s, "closed", c)) for c in out["settings"]["concurrency"] for s in servers]
    lines += [header, "|---|" + "---|" * len(cells)]

    def add(name: str, render: Any) -> None:
        lines.append(f"| {name} | " + " | ".join(render(r) if r is not None else "–" for r in cells) + " |")

    add("runs/s answered", lambda r: _n(r["runs_per_s"], 1))
    add("ideal runs/s (C / run time)", lambda r: _n(r["concurrency"] / ideal_run, 1))
    add("first token p50 / p99 ms", lambda r: _pair(r, "first_token_p50_ms", "first_token_p99_ms"))
    add("sampler first token p50 / p99 ms (answered/runs)", _sampler)
    add("TTFT of admitted attempts p50 / p99 ms", lambda r: _pair(r, "ttft_admitted_p50_ms", "ttft_admitted_p99_ms"))
    add("thread create p50 / p99 ms", lambda r: _pair(r, "thread_create_p50_ms", "thread_create_p99_ms"))
    add("whole run p50 / p99 ms", lambda r: _pair(r, "answer_p50_ms", "answer_p99_ms"))
    add("token gap p50 / p99 ms (0: tokens that came in one read)", lambda r: _pair(r, "gap_p50_ms", "gap_p99_ms"))
    add("runs answered / started", lambda r: f"{_n(r['answered'])} / {_n(r['runs'])}")
    add("refused attempts (runs refused at least once)", _refusals)
    add("refused for good / timed out / failed", lambda r: f"{_outcomes(r, 'refused')} / {_outcomes(r, 'timed_out')} / {_failed(r)}")
    add("server CPU % of one core", lambda r: _n(r["server_cpu_pct"]))
    add("server CPU ms per answered run", lambda r: _n(r["server_cpu_ms_per_run"], 1))
    add("RSS idle → at peak → after, MiB", lambda r: _rss(r, "rss_after_bytes"))
    add("RSS per open run, KiB (open runs at that moment)", _per_open_run)
    add("RSS kept per finished run, KiB", lambda r: _n(r.get("rss_retained_per_run_kb"), 1))
    add("load generator CPU % (of one core)", lambda r: _n(r["loadgen_cpu_pct"]))
    add("other processes on the server's CPU, %", lambda r: _n(r["foreign_cpu_pct"]))

    burst = out["settings"]["burst"]
    if burst:
        lines += [
            "",
            f"## Past capacity: a burst of {burst:,} at once",
            "",
            f"{burst:,} users start together, one run each (thread, then run), retrying refusals as above. "
            "Answered: the whole answer in the end. Refused for good: still refused on the last retry. "
            f"Timed out: a request's whole answer not in within {out['settings']['stream_timeout']:g} s (a user who gives up; "
            "`langgraph_sdk`'s own limits are 5 s to connect and 300 s between two bytes).",
            "",
        ]
        cells = [find(s, "burst") for s in servers]
        lines += ["| | " + " | ".join(LABELS[s] for s in servers) + " |", "|---|" + "---|" * len(cells)]
        add("answered", lambda r: f"{_n(r['answered'])} / {_n(r['runs'])} ({r['answered_share']:.1%})")
        add("refused attempts (runs refused at least once)", _refusals)
        add("retries sent", lambda r: _n(r["retries"]))
        add("refused for good", lambda r: _outcomes(r, "refused"))
        add("timed out", lambda r: _outcomes(r, "timed_out"))
        add("failed (errors, wrong answers, cancelled)", lambda r: _n(_failed(r)))
        add("first token p50 / p99 ms (answered)", lambda r: _pair(r, "first_token_p50_ms", "first_token_p99_ms"))
        add("sampler first token p50 / p99 ms (answered/runs)", _sampler)
        add("first byte of run requests p50 / p99 ms", lambda r: _pair(r, "first_byte_p50_ms", "first_byte_p99_ms"))
        add("thread create p50 / p99 ms", lambda r: _pair(r, "thread_create_p50_ms", "thread_create_p99_ms"))
        add("whole answer p50 / p99 ms (from the thread request)", lambda r: _pair(r, "answer_p50_ms", "answer_p99_ms"))
        add("last answer after, s", lambda r: _n(r["span_s"], 1))
        add("server CPU ms per answered run", lambda r: _n(r["server_cpu_ms_per_run"], 1))
        add("RSS idle → at peak → max, MiB", lambda r: _rss(r, "rss_max_bytes"))
        add("RSS per open run, KiB (open runs at that moment)", _per_open_run)
        add("load generator CPU %", lambda r: _n(r["loadgen_cpu_pct"]))
        add("other processes on the server's CPU, %", lambda r: _n(r["foreign_cpu_pct"]))

    lines += [
        "",
        "## One run at a time (unloaded)",
        "",
        f"The sampler alone for {out['settings']['single_seconds']:g} s: one run at a time, at most "
        f"{out['settings']['sampler_rate']:g} starts per second.",
        "",
    ]
    cells = [find(s, "single") for s in servers]
    lines += ["| | " + " | ".join(LABELS[s] for s in servers) + " |", "|---|" + "---|" * len(cells)]
    add("first token p50 / p99 ms", lambda r: _pair(r, "first_token_p50_ms", "first_token_p99_ms"))
    add("thread create p50 / p99 ms", lambda r: _pair(r, "thread_create_p50_ms", "thread_create_p99_ms"))
    add("whole run p50 / p99 ms", lambda r: _pair(r, "answer_p50_ms", "answer_p99_ms"))
    add("runs answered", lambda r: f"{_n(r['answered'])} / {_n(r['runs'])}")
    add("server CPU % of one core (idle work included)", lambda r: _n(r["server_cpu_pct"], 1))
    add("server started in, s", lambda r: _n(r["server_started_s"], 1))

    lines += [
        "",
        "## What each number means",
        "",
        "- **runs/s answered**: runs whose whole answer arrived (clean end, no `error` event, the expected text word for word), "
        "divided by the time from the first request to the last answer (the drain after the loop stops counts, as in `bench.load`).",
        "- **first token**: from a run's first request (`POST .../runs/stream`) to the first `messages` event with assistant text, "
        "retries and their waits included; answered runs only. **TTFT of admitted attempts**: the same from the attempt that was "
        "served. **whole run / whole answer**: from the run's thread request to its last byte.",
        f"- **sampler**: a separate process beside the load, a new single run every {1 / out['settings']['sampler_rate']:g} s "
        "(thread, then run, on a connection of its own); its first token should match the load generator's. If the "
        "generator's is far worse, the generator (CPU-bound on its core) was measuring itself.",
        "- **refused attempts**: `503`/`429` answers, each retried after `Retry-After`; a run refused on its last retry is "
        "**refused for good** and counts against the server as much as a failure.",
        "- **server CPU**: user + system CPU of the server's process tree during the measurement (gunicorn master + worker; "
        "langgraph dev's one process), over the wall time; per answered run, the CPU each whole run cost.",
        "- **RSS per open run**: (tree RSS at the fullest moment − RSS idle before the load) ÷ runs streaming then (a `200` "
        "received, the stream not ended); of the moments with nearly the most runs streaming and at most 5 % of them answered, "
        "the one with the largest RSS, because both servers keep every finished thread and its checkpoints in memory: an open "
        "run's figure includes its thread and checkpoints so far. **RSS kept per finished run**: (RSS after the load − idle) "
        "÷ answered runs: that retained state (and the allocator's high-water mark).",
        "- **other processes on the server's CPU**: what the CPU the server is pinned to spent on anything else during the run.",
        "",
        "## Notes",
        "",
    ]
    lines += [f"- {note}" for note in out["notes"]]
    return "\n".join(lines) + "\n"


NOTES = [
    "`langgraph dev` is LangGraph's development server: the in-memory runtime (checkpoints, threads and the run queue in one "
    "process), blockbuster's blocking-call checks on its event loop, its state pickled to `bench/apps/.langgraph_api/` now and then, "
    "and three INFO log lines per run. It is the anchor because it serves the same API from the same graph with nothing else to "
    "install; a LangGraph Platform deployment (PostgreSQL, Redis, several workers) would measure differently.",
    "`langgraph dev`'s in-memory queue (`langgraph_runtime_inmem.ops.Runs.next`) sleeps 0.5 s between polls when it found no "
    "run the last time, and scans every run it holds at each pick-up: unloaded, a run's `metadata` event arrives 0.6 to 0.8 s "
    "after the request (measured by hand on this machine), which is most of the gap between its first token and the ideal; "
    "and as finished runs accumulate, each pick-up costs more. Hence a fresh server per scenario in the full run.",
    "uncut runs as shipped: the library's default streaming options and `conf/gunicorn.conf.py` (its GC tuning and switch "
    "interval). The Agent Server admits runs by its own fixed ceilings (`max_concurrent_streams`, `max_streams_per_client`; "
    "none by default), not by the event loop's lag as the other surfaces do: LangGraph's SDKs do not retry a `503` on a run, "
    "and the lag-following line measured worse here (bench/CHANGES.md). `langgraph dev` never refuses either: it queues runs "
    "beyond its 1000 jobs, and its clients wait.",
    "Neither server holds a thread per run: the bench model waits with `asyncio.sleep` under langgraph dev and with (gevent-patched) "
    "`time.sleep` under uncut. The stock `ScriptedChatModel` has no async path; langgraph dev refuses its `time.sleep` on the event "
    "loop (`BlockingError`), and outside dev mode would run it in a 6-thread pool. The harness checks before each run that the "
    "bench model's chunks equal the stock model's.",
    "`langgraph_sdk` itself retries only connection errors (httpx `retries=5`), never a `503`: an app on the plain SDK would see "
    "uncut's refusals as errors. The retrying client here is what an app would write (or the openai SDKs do); it sends no "
    "`x-stainless-retry-count`, so uncut's admission line (other surfaces) would not favour last attempts.",
    "Both servers run on one core each (pinned); the load generator (httpx, one client per user, every event decoded) and the "
    "sampler share the other core. Where the load generator's CPU nears 100 %, its first-token figures include its own queueing: "
    "read the sampler's. On a 2-vCPU virtual machine the two CPUs may share a physical core, so what runs on the other one slows "
    "the server's: compare the CPU ms per run between runs before the runs/s.",
    "Every run is CPU-bound on the server (tens of milliseconds of CPU per run: LangGraph's steps, callbacks, checkpoints and about "
    "60 events), so both servers saturate one core well below the ideal runs/s even at C=100; past that, what differs is who waits "
    "and for how long.",
    "RSS per open run is soft: an open run's memory grows as it goes (its checkpoints, its event log), so the figure depends on how "
    "far the runs had got at the sampled moment; read it beside RSS kept per finished run.",
]


def parse_args(argv: list[str] | None) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m bench.agent_server", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run, about two minutes: C=100 only, 5 s loops, a burst of 400, one server per app for all scenarios",
    )
    parser.add_argument("--concurrency", help="closed-loop users, comma-separated (default 100,400; quick 100)")
    parser.add_argument("--duration", type=float, help="seconds of each closed loop (default 30; quick 5)")
    parser.add_argument("--burst", type=int, help="users in the burst (default 1000; quick 400; 0 skips it)")
    parser.add_argument("--servers", help="comma-separated: langgraph-dev,uncut")
    parser.add_argument("--stream-timeout", type=float)
    parser.add_argument("--max-retries", type=int)
    parser.add_argument("--fresh", action=argparse.BooleanOptionalAction, default=None, help="a fresh server for every scenario")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--env-langgraph", action="append", default=[], metavar="NAME=value", help="for langgraph dev (repeatable)")
    parser.add_argument("--env-uncut", action="append", default=[], metavar="NAME=value", help="for uncut's gunicorn (repeatable)")
    parser.add_argument("--out-dir", type=Path, help="where AGENT_SERVER.md and agent_server.json go (default bench/)")
    args = parser.parse_args(argv)
    preset = "quick" if args.quick else "full"
    settings = replace(Settings(preset=preset), **PRESETS[preset])
    overrides: dict[str, Any] = {}
    if args.concurrency:
        overrides["concurrency"] = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if args.servers:
        names = [s.strip() for s in args.servers.split(",") if s.strip()]
        if not names or set(names) - set(SERVER_NAMES):
            parser.error(f"--servers takes {', '.join(SERVER_NAMES)}")
        overrides["servers"] = names
    for name in ("duration", "burst", "stream_timeout", "max_retries", "fresh"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if args.no_pin:
        overrides["pin"] = False
    env: dict[str, dict[str, str]] = {"langgraph-dev": {}, "uncut": {}}
    for server, items in (("langgraph-dev", args.env_langgraph), ("uncut", args.env_uncut)):
        for item in items:
            key, eq, value = item.partition("=")
            if not eq or not key:
                parser.error(f"expected NAME=value, got {item!r}")
            env[server][key] = value
    overrides["env"] = env
    if args.out_dir:
        overrides["out_dir"] = args.out_dir.resolve()
    settings = replace(settings, **overrides)
    if any(c < 1 for c in settings.concurrency) or settings.duration <= 0 or settings.burst < 0:
        parser.error("concurrency and duration must be positive, the burst 0 or more")
    return settings


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally that stops every child


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    settings = parse_args(argv)
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    given = sys.argv[1:] if argv is None else argv
    command = "python -m bench.agent_server" + ("" if not given else " " + " ".join(given))
    bench = AgentBench(settings)
    began = time.monotonic()
    out: dict[str, Any] = {
        "command": command,
        "full_command": ".venv/bin/python -m bench.agent_server",
        "preliminary": settings.preset != "full",
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "commit": git_commit(),
        "settings": {**asdict(settings), "out_dir": str(settings.out_dir)},
        "machine": machine(bench.app_cpus, bench.load_cpus),
        "model": bench.model,
        "expected_answer": bench.expected,
        "tool_fragments": tool_fragments(),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "notes": NOTES,
    }
    try:
        bench.main()
    except NotReady as exc:
        log(f"FAILED: a server did not become ready: {exc}")
        raise
    out["rows"] = bench.rows
    out["elapsed_s"] = round(time.monotonic() - began, 1)
    out["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    out["busy"] = max(out["load_average_start"][0], out["load_average_end"][0]) > 1.5 or any(
        (r.get("foreign_cpu_pct") or 0) > 10 for r in bench.rows
    )
    (settings.out_dir / "agent_server.json").write_text(json.dumps(out, indent=1) + "\n")
    (settings.out_dir / "AGENT_SERVER.md").write_text(table(out))
    log(f"done in {out['elapsed_s']} s: {settings.out_dir / 'AGENT_SERVER.md'}, {settings.out_dir / 'agent_server.json'}")
    return 0


def tool_fragments() -> int:
    """How many argument fragments the model's tool call streams (each one interval apart)."""
    from langchain_core.messages import HumanMessage

    from bench.apps.agent_graph import PROMPT, model, weather_tool

    script = model._script([HumanMessage(PROMPT)], **model.bind_tools([weather_tool]).kwargs)  # type: ignore[attr-defined]
    return sum(1 for _, chunk in script if any(f.get("name") is None for f in getattr(chunk.message, "tool_call_chunks", None) or []))


def report_from(path: Path) -> None:
    """Rebuild AGENT_SERVER.md from a JSON file: ``python -m bench.agent_server --report bench/agent_server.json``."""
    out = json.loads(path.read_text())
    (path.parent / "AGENT_SERVER.md").write_text(table(out))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--report":
        report_from(Path(sys.argv[2]))
        raise SystemExit(0)
    raise SystemExit(main())
