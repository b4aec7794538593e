"""The soak's real parts, all on loopback, and the faults done to them.

Two service instances (gunicorn from conf/gunicorn.conf.py, two gevent
workers each) share a real Redis, behind nginx from conf/nginx.conf with
both as upstream servers; all stream from the local OpenAI-protocol
upstream. Each fault is what operators do or suffer: a rolling SIGHUP, a
SIGTERM followed by a restart on the same port, a worker killed with
SIGKILL (its master starts another), an nginx reload, a Redis restart
with its data kept (AOF, as conf/redis.conf ships it) and a Sentinel
failover (the primary killed, its replica promoted): the instances reach
Redis through ``redis+sentinel://``.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import psutil

from tests.support.openai_upstream import OpenAIUpstream
from tests.support.processes import stop_process
from tests.support.proxies import Nginx, Variant, nginx_server
from tests.support.redis_server import RedisServer, SentinelSetup
from tests.support.servers import GunicornServer


@dataclass
class Settings:
    """The service's settings for the soak: fast heartbeats and retries, a short grace."""

    grace_seconds: float = 5.0
    graceful_timeout: int = 30

    def env(self, upstream: OpenAIUpstream, redis_url: str) -> dict[str, str]:
        return {
            "WEBAPP_PROVIDER": "openai",
            "OPENAI_API_KEY": "soak-key-not-secret",
            "OPENAI_BASE_URL": upstream.base_url,
            "WEBAPP_MODEL": "soak-model",
            "WEBAPP_UPSTREAM_MAX_RETRIES": "2",
            "WEBAPP_STREAM_STORE": redis_url,
            "WEBAPP_HEARTBEAT_SECONDS": "1",
            "WEBAPP_RETRY_MS": "300",
            "WEBAPP_ON_DISCONNECT": "continue",
            "WEBAPP_RESUME_GRACE_SECONDS": str(self.grace_seconds),
            "WEBAPP_MAX_STREAM_SECONDS": "120",
            "WEBAPP_CLIENT_ADDRESS_HEADER": "X-Forwarded-For",
            "WEBAPP_LOG_LEVEL": "WARNING",
            "GUNICORN_WORKERS": "2",
            "GUNICORN_GRACEFUL_TIMEOUT": str(self.graceful_timeout),
            "GUNICORN_ACCESSLOG": "",
        }


@dataclass
class Cluster:
    """nginx → two instances → Redis, upstream; ``faults`` records what was done, when."""

    workdir: Path
    upstream: OpenAIUpstream
    settings: Settings = field(default_factory=Settings)
    instances: list[GunicornServer] = field(default_factory=list)
    faults: list[tuple[float, str]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def start(self) -> "Cluster":
        """Each part is kept as soon as it runs, so a failure (or Ctrl-C) part way stops the ones already started."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            # Sentinel notices a dead primary after 3 s: a restart (well under that) stays a restart.
            self.redis = SentinelSetup(self.workdir, down_after_ms=3000, failover_timeout_ms=10000)
            self.redis.start()
            env = self.settings.env(self.upstream, self.redis.url)
            for i in (1, 2):
                self.instances.append(GunicornServer(self.workdir, env=env, name=f"instance-{i}"))
                self.instances[-1].start()
            variant = Variant(add_after={"keepalive 32;": nginx_server(self.instances[1].port)})
            self.nginx = Nginx(self.workdir, self.instances[0].port, variant)
            self.nginx.start()
        except BaseException:
            self.stop()
            raise
        self.started = time.monotonic()
        return self

    @property
    def url(self) -> str:
        return self.nginx.url

    def _did(self, what: str) -> None:
        self.faults.append((round(time.monotonic() - self.started, 2), what))

    def rolling_restart(self, index: int) -> None:
        """SIGHUP: the master starts new workers, the old ones drain."""
        self.instances[index].signal(signal.SIGHUP)
        self._did(f"SIGHUP instance-{index + 1}")

    def stop_and_restart(self, index: int) -> None:
        """SIGTERM, wait for the drain to end, start again on the same port (a deploy)."""
        old = self.instances[index]
        old.signal(signal.SIGTERM)
        self._did(f"SIGTERM instance-{index + 1}")
        assert old.process is not None
        try:
            old.process.wait(self.settings.graceful_timeout + 15)
        except subprocess.TimeoutExpired:
            stop_process(old.process, signal.SIGKILL, 5)  # the master and its workers
        new = GunicornServer(self.workdir, env=old.env, name=f"instance-{index + 1}-restarted", port=old.port)
        self.instances[index] = new.start()
        self._did(f"restarted instance-{index + 1}")

    def stop_instance(self, index: int) -> None:
        """SIGTERM, and nothing started in its place (the last deploy of a scenario): its drain is left to run."""
        self.instances[index].signal(signal.SIGTERM)
        self._did(f"SIGTERM instance-{index + 1}")

    def kill_a_worker(self, index: int) -> None:
        """SIGKILL one worker: no drain, no terminal events; its master starts another."""
        master = self.instances[index].process
        assert master is not None
        workers = psutil.Process(master.pid).children()
        if workers:
            workers[0].kill()
            self._did(f"kill -9 a worker of instance-{index + 1}")

    def reload_nginx(self) -> None:
        assert self.nginx.process is not None
        self.nginx.process.send_signal(signal.SIGHUP)
        self._did("nginx reload")

    def _primary(self) -> RedisServer:
        port = self.redis.master_port()
        return self.redis.primary if self.redis.primary.port == port else self.redis.replica

    def restart_redis(self) -> None:
        """kill -9 of the primary, started again at once from its AOF: the data is kept, no failover."""
        self._primary().restart()
        self._did("Redis restart (data kept)")

    def failover_redis(self) -> None:
        """kill -9 of the primary; the Sentinel promotes the replica; the old primary comes back as its replica."""
        old = self._primary()
        old.stop()
        self._did("Sentinel failover: primary killed")
        _wait_until(lambda: self.redis.master_port() != old.port, 30.0)
        self._did("Sentinel failover: replica promoted")
        old.start()

    def stop(self) -> None:
        """Every part that was started, even if stopping one of them fails."""
        parts = [getattr(self, "nginx", None), *self.instances, getattr(self, "redis", None)]
        with contextlib.ExitStack() as stack:
            for part in reversed([p for p in parts if p is not None]):  # the stack runs last-pushed first
                stack.callback(part.stop)


def _wait_until(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - the Sentinel may not answer while it fails over
            pass
        time.sleep(0.1)
    raise RuntimeError(f"not done within {timeout}s")
