"""Real proxies started on loopback from the shipped conf/ files.

A test changes the shipped file only where it must: the ports (the app's
and the proxy's own) and, for idle-timeout tests, the timeout value. Every
substitution must match exactly once, so a config that changes shape
breaks the test instead of silently testing something else. Negative
controls remove or add named lines the same way.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pytest

from tests.support.processes import stop_process
from tests.support.servers import ROOT, free_port, wait_until_ready

CONF = ROOT / "conf"
APP_ADDRESS = "127.0.0.1:8000"


def require_binary(name: str, package: str) -> str:
    """The binary's path; a failure under CI, a skip that names the install command elsewhere."""
    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None)
    if path:
        return path
    message = f"{name} is not installed: apt-get install -y {package}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message + " (CI must install it: see .ci/run)")
    pytest.skip(message)


def substitute(text: str, old: str, new: str, *, every: bool = False) -> str:
    """Replace ``old`` (a literal) with ``new``; it must occur exactly once (``every``: at least once)."""
    count = text.count(old)
    if count == 0 or (count > 1 and not every):
        raise AssertionError(f"expected {'' if every else 'exactly '}one {old!r} in the shipped config, found {count}")
    return text.replace(old, new)


def nginx_server(port: int, *, max_fails: bool = True) -> str:
    """Another ``server`` line for the shipped nginx upstream, written as conf/nginx.conf says to
    (``max_fails=False``: as nginx's default would have it, for a negative control)."""
    return f"        server 127.0.0.1:{port}{' max_fails=0' if max_fails else ''};"


@dataclass
class Variant:
    """How a test changes the shipped file: timeouts, removed lines, added lines."""

    idle_timeout_seconds: int | None = None
    remove: Sequence[str] = ()
    add_after: dict[str, str] = field(default_factory=dict)


class Proxy:
    """One proxy process; subclasses say how to render, check and run their server."""

    name = "proxy"
    binary = ""
    package = ""
    conf_file = ""
    listen = ""  # the shipped listen address, replaced by a free port
    timeout_line = ""  # the shipped idle-timeout line; "{}" marks the seconds

    def __init__(self, workdir: Path, app_port: int | None, variant: Variant | None = None) -> None:
        """``app_port=None`` keeps the file exactly as shipped (for the config check)."""
        self.executable = require_binary(self.binary, self.package)
        self.workdir = workdir / f"{self.name}-{free_port()}"
        self.workdir.mkdir(parents=True)
        self.port = free_port() if app_port is not None else int(self.listen.rsplit(":", 1)[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.variant = variant or Variant()
        self.config_path = self.workdir / Path(self.conf_file).name
        self.config_path.write_text(self.render(app_port))
        self.log_path = self.workdir / "proxy.log"
        self.process: subprocess.Popen[bytes] | None = None

    def render(self, app_port: int | None) -> str:
        text = (CONF / self.conf_file).read_text()
        if app_port is None:
            return text
        text = substitute(text, APP_ADDRESS, f"127.0.0.1:{app_port}", every=True)
        text = substitute(text, self.listen, f"127.0.0.1:{self.port}")
        if self.variant.idle_timeout_seconds is not None:
            shipped = re.escape(self.timeout_line).replace(r"\{\}", r"(\d+)")
            matches = re.findall(shipped, text)
            assert len(matches) == 1, f"expected one {self.timeout_line!r} in {self.conf_file}"
            text = re.sub(shipped, self.timeout_line.format(self.variant.idle_timeout_seconds), text)
        for line in self.variant.remove:
            text = substitute(text, line, "")
        for anchor, line in self.variant.add_after.items():
            text = substitute(text, anchor, anchor + "\n" + line)
        return text

    def check_command(self) -> list[str]:
        raise NotImplementedError

    def run_command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def check(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.check_command(), cwd=self.workdir, capture_output=True, text=True, timeout=30, env=self.env())

    def start(self, timeout: float = 20.0) -> "Proxy":
        checked = self.check()
        assert checked.returncode == 0, f"{self.name} config check failed:\n{checked.stdout}{checked.stderr}"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.run_command(), cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, env=self.env())
        try:
            ready = wait_until_ready(self.process, self.url + "/healthz", timeout)
        except BaseException:  # Ctrl-C while waiting: the caller never got the proxy to stop
            self.stop()
            raise
        if not ready:
            self.stop()
            raise AssertionError(f"{self.name} exited or did not proxy /healthz within {timeout}s:\n{self.log()}")
        return self

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to the master and to its workers (a killed nginx master leaves them serving)."""
        stop_process(self.process, signal.SIGTERM, 10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Nginx(Proxy):
    name, binary, package, conf_file = "nginx", "nginx", "nginx", "nginx.conf"
    listen = "127.0.0.1:8080"
    timeout_line = "proxy_read_timeout {}s;"

    def check_command(self) -> list[str]:
        return [self.executable, "-t", "-q", "-p", str(self.workdir), "-c", str(self.config_path)]

    def run_command(self) -> list[str]:
        return [self.executable, "-p", str(self.workdir), "-c", str(self.config_path), "-g", "daemon off;"]


class HAProxy(Proxy):
    name, binary, package, conf_file = "haproxy", "haproxy", "haproxy", "haproxy.cfg"
    listen = "127.0.0.1:8081"
    timeout_line = "timeout server {}s"

    def check_command(self) -> list[str]:
        return [self.executable, "-c", "-f", str(self.config_path)]

    def run_command(self) -> list[str]:
        return [self.executable, "-db", "-f", str(self.config_path)]


class Caddy(Proxy):
    name, binary, package, conf_file = "caddy", "caddy", "caddy", "Caddyfile"
    listen = "127.0.0.1:8082"
    timeout_line = "read_timeout {}s"

    def env(self) -> dict[str, str]:
        # Caddy keeps state under $HOME / XDG dirs: give each instance its own.
        return {**os.environ, "HOME": str(self.workdir), "XDG_DATA_HOME": str(self.workdir), "XDG_CONFIG_HOME": str(self.workdir)}

    def check_command(self) -> list[str]:
        return [self.executable, "validate", "--config", str(self.config_path), "--adapter", "caddyfile"]

    def run_command(self) -> list[str]:
        return [self.executable, "run", "--config", str(self.config_path), "--adapter", "caddyfile"]


APACHE_MODULES = ("mpm_event", "authz_core", "proxy", "proxy_http", "headers", "env", "filter", "deflate", "setenvif")


class Apache(Proxy):
    """The shipped site file, included from a minimal main config like Debian's (deflate on text/plain)."""

    name, binary, package, conf_file = "apache", "apache2", "apache2", "apache.conf"
    listen = "127.0.0.1:8083"
    timeout_line = "ProxyTimeout {}"

    def __init__(self, workdir: Path, app_port: int | None, variant: Variant | None = None) -> None:
        super().__init__(workdir, app_port, variant)
        modules = "\n".join(f"LoadModule {m}_module /usr/lib/apache2/modules/mod_{m}.so" for m in APACHE_MODULES)
        main = f"""
ServerRoot {self.workdir}
ServerName 127.0.0.1
DefaultRuntimeDir {self.workdir}
PidFile {self.workdir}/apache.pid
Mutex file:{self.workdir}
ErrorLog /dev/stderr
LogLevel warn
{modules}
User www-data
Group www-data
Listen 127.0.0.1:{self.port}
# As Debian's deflate.conf: compress text/plain, among others.
AddOutputFilterByType DEFLATE text/html text/plain text/css application/json
Include {self.config_path}
"""
        self.main_path = self.workdir / "httpd.conf"
        self.main_path.write_text(main)

    def check_command(self) -> list[str]:
        return [self.executable, "-t", "-f", str(self.main_path)]

    def run_command(self) -> list[str]:
        return [self.executable, "-DFOREGROUND", "-f", str(self.main_path)]


PROXIES: dict[str, type[Proxy]] = {"nginx": Nginx, "haproxy": HAProxy, "caddy": Caddy, "apache": Apache}
