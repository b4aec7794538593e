"""A real redis-server on a free loopback port, with no persistence (a restart loses everything)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import redis

from tests.support.processes import stop_process
from tests.support.proxies import require_binary
from tests.support.servers import free_port


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        self.executable = require_binary("redis-server", "redis-server")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> "RedisServer":
        command = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                   "--dir", str(self.workdir), "--daemonize", "no"]
        with open(self.workdir / f"redis-{self.port}.log", "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    client.ping()
                    return self
                except redis.RedisError:
                    time.sleep(0.05)
        except BaseException:  # Ctrl-C while waiting: the caller never got the server to stop
            self.stop()
            raise
        self.stop()
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        """SIGKILL: a restart loses everything, as a crash would."""
        stop_process(self.process, signal.SIGKILL, 5)

    def restart(self) -> None:
        self.stop()
        self.start()
