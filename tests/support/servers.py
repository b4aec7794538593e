"""Real gunicorn processes for end-to-end tests, started from the shipped config.

Each server gets a free loopback port, a clean environment (no OPENAI_* or
WEBAPP_* from the developer's shell), and a log file the failure message
quotes. Readiness is polled on ``/healthz``; nothing sleeps a fixed time.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Mapping, Self, Sequence

import httpx

from tests.support.processes import stop_process

ROOT = Path(__file__).resolve().parents[2]
GUNICORN_CONF = ROOT / "conf" / "gunicorn.conf.py"


# Under pytest-xdist, worker gwN draws from FIRST_TEST_PORT + N * PORTS_PER_TEST_WORKER. The ranges start
# above 10080, the highest of the ports that fetch() (Node, browsers) refuses to connect to, and stay
# below the kernel's ephemeral ports (32768 up) for gw0-gw4.
FIRST_TEST_PORT = 11000
PORTS_PER_TEST_WORKER = 4000


def free_port() -> int:
    """A loopback port nothing listens on now.

    Alone, the kernel picks one. Under pytest-xdist each worker draws from its
    own range instead: two workers probing at once could otherwise be handed
    the same port, and one test's readiness check would reach the other's server.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return _bind_probe(0)
    low = FIRST_TEST_PORT + int(worker[2:]) * PORTS_PER_TEST_WORKER
    for port in random.sample(range(low, low + PORTS_PER_TEST_WORKER), 200):
        try:
            return _bind_probe(port)
        except OSError:
            continue
    raise RuntimeError(f"no free port in {low}-{low + PORTS_PER_TEST_WORKER - 1}")


def _bind_probe(port: int) -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        return sock.getsockname()[1]


def clean_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The current environment without settings that would change the app under test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEBAPP_", "OPENAI_", "GUNICORN_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def wait_until_ready(process: subprocess.Popen[bytes], url: str, timeout: float) -> bool:
    """Poll ``url`` until it answers 200 (True), or the process exits or the time runs out (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    return False


class ServerProcess:
    """A server in its own process on a free loopback port, ready when ``ready_path`` answers 200."""

    def __init__(self, log_dir: Path, command: list[str], port: int, env: Mapping[str, str] | None, name: str, ready_path: str) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"{name}-{self.port}.log"
        self.command = command
        self.env = clean_environ(env)
        self.ready_path = ready_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Self:
        with open(self.log_path, "wb") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        try:
            ready = wait_until_ready(self.process, self.url + self.ready_path, timeout)
        except BaseException:  # Ctrl-C while waiting: the caller never got the server to stop
            self.stop()
            raise
        if not ready:
            self.stop()
            raise RuntimeError(f"server exited or did not become ready in {timeout}s:\n{self.log()}")
        return self

    def run_to_exit(self, timeout: float = 30.0) -> int:
        """Start and wait for the master to exit by itself (for start-up failures); stopped if it does not."""
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        try:
            return self.process.wait(timeout)
        finally:
            self.stop()

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGINT (quick shutdown: tests do not wait for a graceful drain), then SIGKILL to the master and its workers."""
        stop_process(self.process, signal.SIGINT, timeout)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class GunicornServer(ServerProcess):
    """gunicorn started from conf/gunicorn.conf.py, with extra flags (``-k sync``...) on top."""

    def __init__(
        self,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
        app: str = "wsgi:app",
        name: str = "gunicorn",
        ready_path: str = "/healthz",
        port: int | None = None,  # a restart takes its predecessor's port, where the proxy expects it
    ) -> None:
        port = port or free_port()
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(GUNICORN_CONF),
            "--bind",
            f"127.0.0.1:{port}",
            *args,
            app,
        ]
        super().__init__(log_dir, command, port, env, name, ready_path)


class FlaskDevServer(ServerProcess):
    """``flask run``: the threaded Werkzeug development server."""

    def __init__(self, log_dir: Path, app: str, env: Mapping[str, str] | None = None, name: str = "flask", ready_path: str = "/") -> None:
        port = free_port()
        command = [sys.executable, "-m", "flask", "--app", app, "run", "--host", "127.0.0.1", "--port", str(port)]
        super().__init__(log_dir, command, port, env, name, ready_path)
