"""Real redis-servers on free loopback ports: a plain one (persistent with ``appendonly``, else a restart
loses everything), and a Sentinel setup (a primary, one replica, one ``redis-server --sentinel``, quorum 1)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

import redis

from tests.support.processes import stop_process
from tests.support.proxies import require_binary
from tests.support.servers import free_port

SERVICE = "mymaster"


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except redis.RedisError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{what} within {timeout:g}s")


class RedisServer:
    def __init__(
        self,
        workdir: Path,
        *,
        appendonly: bool = False,
        replica_of: int | None = None,
        name: str = "",
        config: Path | None = None,
    ) -> None:
        """``config``: a redis.conf (conf/redis.conf) whose settings hold, but for the port, address and directory."""
        self.executable = require_binary("redis-server", "redis-server")
        self.config = config
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.appendonly = appendonly
        self.replica_of = replica_of
        self.workdir = workdir / (name or f"redis-{self.port}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen[bytes] | None = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=2)

    def start(self, timeout: float = 10.0) -> "RedisServer":
        if self.config is not None:
            command = [
                self.executable,
                str(self.config),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.workdir),
                "--daemonize",
                "no",
            ]
        else:
            command = [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--appendfsync",
                "everysec",
                "--dir",
                str(self.workdir),
                "--daemonize",
                "no",
            ]
        if self.replica_of is not None:
            command += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        with open(self.workdir / "redis.log", "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        client = self.client()
        try:  # up and done loading its AOF (a LOADING server answers PING with an error)
            _wait(lambda: bool(client.ping()) and client.info("persistence").get("loading") == 0, timeout, "redis-server did not start")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """kill -9: no shutdown save, no goodbye (an AOF keeps what it was given, to the last write)."""
        stop_process(self.process, signal.SIGKILL, 5)

    def restart(self, down_seconds: float = 0.0) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def log(self) -> str:
        path = self.workdir / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""


class SentinelSetup:
    """A primary, one replica and one Sentinel (quorum 1) that fails over a second after the primary dies."""

    def __init__(self, workdir: Path, *, down_after_ms: int = 1000, failover_timeout_ms: int = 5000) -> None:
        self.executable = require_binary("redis-server", "redis-server")
        self.workdir = workdir
        self.primary = RedisServer(workdir, appendonly=True, name="primary")
        self.replica = RedisServer(workdir, appendonly=True, replica_of=self.primary.port, name="replica")
        self.sentinel_port = free_port()
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.sentinel: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{SERVICE}/0"

    def sentinel_client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.sentinel_port, socket_connect_timeout=0.5, socket_timeout=2)

    def master_port(self) -> int:
        return int(self.sentinel_client().sentinel_get_master_addr_by_name(SERVICE)[1])

    def start(self, timeout: float = 20.0) -> "SentinelSetup":
        """Every process up, the replica in sync and known to the Sentinel; ``stop()`` on any failure."""
        try:
            self.primary.start()
            self.replica.start()
            replica = self.replica.client()
            _wait(lambda: replica.info("replication").get("master_link_status") == "up", timeout, "the replica did not sync")
            conf = self.workdir / "sentinel.conf"  # Sentinel rewrites its config: a file of its own
            conf.write_text(
                f"port {self.sentinel_port}\nbind 127.0.0.1\ndir {self.workdir}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} 1\n"
                f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}\n"
                f"sentinel failover-timeout {SERVICE} {self.failover_timeout_ms}\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            with open(self.workdir / "sentinel.log", "ab") as log:
                self.sentinel = subprocess.Popen([self.executable, str(conf), "--sentinel"], stdout=log, stderr=subprocess.STDOUT)
            sentinel = self.sentinel_client()

            def knows_the_replica() -> bool:
                replicas = sentinel.sentinel_slaves(SERVICE)
                return any(
                    int(r["port"]) == self.replica.port and "s_down" not in r["flags"] and "disconnected" not in r["flags"]
                    for r in replicas
                )

            _wait(knows_the_replica, timeout, "the Sentinel did not find the replica")
            return self
        except BaseException:
            self.stop()
            raise

    def kill_primary(self) -> None:
        self.primary.stop()

    def wait_for_failover(self, timeout: float = 15.0) -> float:
        """Seconds until the Sentinel names the replica as primary and the replica says it is one."""
        started = time.monotonic()
        replica = self.replica.client()
        _wait(
            lambda: self.master_port() == self.replica.port and replica.info("replication").get("role") == "master",
            timeout,
            "the Sentinel did not promote the replica",
        )
        return time.monotonic() - started

    def stop(self) -> None:
        if self.sentinel is not None and self.sentinel.poll() is None:
            self.sentinel.kill()
            self.sentinel.wait(5)
        self.replica.stop()
        self.primary.stop()

    def log(self) -> str:
        path = self.workdir / "sentinel.log"
        return path.read_text(errors="replace") if path.exists() else ""
