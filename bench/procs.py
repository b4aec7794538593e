"""Child processes of the harness: start, wait until ready, find the worker, always stop.

Each child runs in its own session (process group) so that stopping it
also stops what it forked (gunicorn's worker); it gets the hard
file-descriptor limit as its soft limit and, when asked, a CPU set.
Readiness is polled with a deadline: a server that exits or never answers
fails the run loudly, with the tail of its log.
"""

from __future__ import annotations

import http.client
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import psutil

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


class NotReady(RuntimeError):
    """A child process did not become ready, or died."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_setup(cpus: Sequence[int] | None) -> Any:
    """The preexec hook: raise the fd soft limit to the hard limit, pin to ``cpus``."""

    def setup() -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        if cpus:
            os.sched_setaffinity(0, set(cpus))

    return setup


def http_json(port: int, method: str, path: str, body: Any = None, timeout: float = 5.0) -> tuple[int, Any]:
    """One small loopback request; returns (status, decoded JSON or text)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, raw.decode("utf-8", "replace")
    finally:
        conn.close()


class Child:
    """One server process (and whatever it forks), logging to a file."""

    def __init__(
        self,
        name: str,
        command: list[str],
        *,
        port: int,
        env: Mapping[str, str],
        log_dir: Path,
        cpus: Sequence[int] | None = None,
        ready_path: str = "/healthz",
    ) -> None:
        self.name = name
        self.command = command
        self.port = port
        self.env = dict(env)
        self.log_path = log_dir / f"{name}.log"
        self.cpus = list(cpus) if cpus else None
        self.ready_path = ready_path
        self.popen: subprocess.Popen[bytes] | None = None
        self.stopped = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> "Child":
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                self.command,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=child_setup(self.cpus),
            )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        assert self.popen is not None
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise NotReady(f"{self.name} exited with {self.popen.returncode}:\n{self.log_tail()}")
            try:
                status, _ = http_json(self.port, "GET", self.ready_path, timeout=1.0)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise NotReady(f"{self.name} did not answer {self.ready_path} with 200 within {timeout:g}s:\n{self.log_tail()}")

    def worker_pid(self, timeout: float = 10.0) -> int:
        """The process that serves requests: gunicorn's one worker, else the process itself."""
        assert self.popen is not None
        deadline = time.monotonic() + timeout
        parent = psutil.Process(self.popen.pid)
        if "gunicorn" not in " ".join(self.command):
            return self.popen.pid
        while time.monotonic() < deadline:
            children = parent.children()
            if len(children) == 1:
                return children[0].pid
            time.sleep(0.05)
        raise NotReady(f"{self.name}: expected exactly one gunicorn worker, found {parent.children()}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGINT (quick shutdown for gunicorn and uvicorn), then SIGKILL to the whole group."""
        if self.popen is None or self.stopped:
            return
        self.stopped = True
        pgid = self.popen.pid  # start_new_session: the child leads its own group
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(signal.SIGINT)
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(pgid, signal.SIGKILL)  # leftovers (a worker that outlived its master)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of one process (0 if it is gone)."""
    try:
        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)
    except psutil.Error:
        return 0.0


def busy_seconds(cpu: int | None) -> float:
    """CPU time spent busy (anything but idle) so far, on one CPU or on all of them."""
    times = psutil.cpu_times(percpu=True)[cpu] if cpu is not None else psutil.cpu_times()
    return float(
        times.user + times.nice + times.system + getattr(times, "irq", 0.0) + getattr(times, "softirq", 0.0) + getattr(times, "steal", 0.0)
    )


def children_cpu_seconds() -> float:
    """CPU time of this process's children that have been waited for (a finished ceiling or load run)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_json(
    command: list[str], *, out: Path, timeout: float, env: Mapping[str, str] | None = None, cpus: Sequence[int] | None = None
) -> dict[str, Any]:
    """Run a measuring child (load generator, ceiling) to completion and read its JSON output."""
    out.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [*command, "--out", str(out)],
        cwd=ROOT,
        env=dict(env or os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=child_setup(cpus),
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
        raise RuntimeError(f"{' '.join(command[:4])}... did not finish within {timeout:g}s")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"{' '.join(command)} failed ({proc.returncode}):\n{output.decode(errors='replace')[-3000:]}")
    return json.loads(out.read_text())
