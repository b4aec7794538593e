"""A real PostgreSQL for the tests: Debian's ``postgresql``, a fresh cluster in a temporary directory, on loopback.

initdb refuses to run as root, so as root the cluster belongs to the
``postgres`` user (run through ``runuser``); otherwise to whoever runs the
tests. Trust authentication on 127.0.0.1 only, no password: a throwaway
database that never leaves the machine.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pytest

from tests.support.processes import stop_process
from tests.support.servers import free_port

if TYPE_CHECKING:
    from tests.support.redis_server import RedisServer

INSTALL = "apt-get install -y postgresql"


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or ([shutil.which(name)] if shutil.which(name) else [])
    if found:
        return found[-1]
    message = f"PostgreSQL's {name} is not installed: {INSTALL}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message + " (CI must install it: see .ci/run)")
    pytest.skip(message)


class PostgresServer:
    def __init__(self, workdir: Path) -> None:
        self.postgres = _bin("postgres")
        self.initdb = _bin("initdb")
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        # As root the cluster is the postgres user's, which cannot enter pytest's (root-only) temporary directories.
        self.workdir = Path(tempfile.mkdtemp(prefix=f"uncut-postgres-{self.port}-")) if self.as_root else workdir / f"postgres-{self.port}"
        self.data = self.workdir / "data"
        self.user = "postgres" if self.as_root else os.environ.get("USER", "postgres")
        self.url = f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"
        self.process: subprocess.Popen[bytes] | None = None

    def _as_owner(self, command: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *command] if self.as_root else command

    def start(self, timeout: float = 30.0) -> "PostgresServer":
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.as_root:
            shutil.chown(self.workdir, "postgres")
        if not self.data.exists():
            subprocess.run(
                self._as_owner([self.initdb, "-D", str(self.data), "-A", "trust", "-U", self.user, "--no-sync"]),
                check=True,
                capture_output=True,
                timeout=120,
            )
        command = self._as_owner(
            [
                self.postgres,
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                str(self.workdir),
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ]
        )
        with open(self.workdir / "postgres.log", "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        import psycopg

        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited: {(self.workdir / 'postgres.log').read_text()[-2000:]}")
            try:
                with psycopg.connect(self.url, connect_timeout=1):
                    return self
            except psycopg.OperationalError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("postgres did not start in time")

    def stop(self) -> None:
        """A fast shutdown (SIGINT to the postmaster: runuser passes no signal on); what is committed stays on disk."""
        if self.process is not None and self.process.poll() is None:
            try:
                os.kill(int((self.data / "postmaster.pid").read_text().split()[0]), signal.SIGINT)
                self.process.wait(20)
            except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
                pass
        stop_process(self.process, signal.SIGKILL, 5)  # whatever is left, and its children
        self.process = None

    def remove(self) -> None:
        """Stop, and delete the cluster."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextmanager
def postgres_and_redis(workdir: Path) -> Iterator[tuple[PostgresServer, "RedisServer"]]:
    """A PostgreSQL (threads) and an append-only Redis (streams) that outlive a restart of the app, for one module."""
    from tests.support.redis_server import RedisServer

    postgres, redis = PostgresServer(workdir), RedisServer(workdir, appendonly=True)
    try:
        postgres.start()
        redis.start()
        yield postgres, redis
    finally:
        redis.stop()
        postgres.remove()
