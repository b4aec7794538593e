"""The config doctor: the shipped files pass, broken ones fail with the reason and the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.servers import ROOT, clean_environ
from uncut.doctor import haproxy_rules, nginx_directives, nginx_rules, parse_duration
from webapp.config import load_settings
from webapp.doctor import run

CONF = ROOT / "conf"
SHIPPED = ["--nginx", str(CONF / "nginx.conf"), "--haproxy", str(CONF / "haproxy.cfg")]


def doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webapp.doctor", *args], cwd=ROOT, capture_output=True, text=True, env=clean_environ(env), timeout=60
    )


def test_the_shipped_files_pass() -> None:
    result = doctor(*SHIPPED)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PROBLEM" not in result.stdout and "0 problems" in result.stdout


def test_heartbeats_off_fail_the_budget() -> None:
    result = doctor(*SHIPPED, env={"WEBAPP_HEARTBEAT_SECONDS": "0"})
    assert result.returncode == 1 and "PROBLEM  heartbeats on" in result.stdout


def test_a_bad_setting_is_reported_not_crashed_on() -> None:
    result = doctor(env={"WEBAPP_HEARTBEAT_SECONDS": "often"})
    assert result.returncode == 2 and "WEBAPP_HEARTBEAT_SECONDS" in result.stderr


def broken(tmp_path: Path, name: str, old: str, new: str) -> Path:
    text = (CONF / name).read_text()
    assert text.count(old) == 1, old
    path = tmp_path / name
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.parametrize(
    ("old", "new", "rule", "says"),
    [
        ("proxy_buffering off;", "proxy_buffering on;", "nginx proxy_buffering off", "buffering holds tokens"),
        ("proxy_buffering off;", "", "nginx proxy_buffering off", "on (default)"),
        ("proxy_http_version 1.1;", "", "nginx proxy_http_version 1.1", "a cut stream looks complete"),
        ("proxy_http_version 1.1;", "proxy_http_version 1.0;", "nginx proxy_http_version 1.1", "1.0"),
        ("proxy_read_timeout 300s;", "proxy_read_timeout 10s;", "nginx proxy_read_timeout > heartbeat", "10s, heartbeat 15s"),
        ("proxy_send_timeout 300s;", "proxy_send_timeout 5;", "nginx proxy_send_timeout > heartbeat", "5s"),
        ("proxy_cache off;", "proxy_cache streams;", "nginx proxy_cache off", "streams"),
        (
            "gzip_types application/json",
            "gzip_types text/event-stream application/json",
            "nginx gzip leaves streams alone",
            "text/event-stream",
        ),
    ],
)
def test_a_broken_nginx_config_fails_with_its_reason(tmp_path: Path, old: str, new: str, rule: str, says: str) -> None:
    path = broken(tmp_path, "nginx.conf", old, new)
    status, findings = run(["--nginx", str(path)], environ={})
    failed = {f.rule: f for f in findings if not f.ok}
    assert status == 1 and set(failed) == {rule}
    assert says in failed[rule].detail + failed[rule].fix and failed[rule].fix


@pytest.mark.parametrize(
    ("old", "new", "rule"),
    [
        ("timeout server 300s", "timeout server 10s", "haproxy timeout server > heartbeat"),
        ("timeout server 300s", "timeout server 300", "haproxy timeout server > heartbeat"),  # 300 ms: HAProxy's unit
        ("timeout client 300s", "timeout client 14s", "haproxy timeout client > heartbeat"),
        (
            "    option forwardfor",
            "    option forwardfor\n    compression type text/event-stream",
            "haproxy compression leaves streams alone",
        ),
    ],
)
def test_a_broken_haproxy_config_fails_with_its_reason(tmp_path: Path, old: str, new: str, rule: str) -> None:
    path = broken(tmp_path, "haproxy.cfg", old, new)
    status, findings = run(["--haproxy", str(path)], environ={})
    assert status == 1 and {f.rule for f in findings if not f.ok} == {rule}


@pytest.mark.parametrize(
    ("old", "new", "rules"),
    [
        (
            'worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gevent")',
            'worker_class = "sync"',
            {"gunicorn worker class", "worker timeout >= longest stream"},
        ),
        ("preload_app = False", "preload_app = True", {"no preload under gevent"}),
        (
            'graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "310"))',
            "graceful_timeout = 30",
            {"graceful_timeout >= longest stream"},
        ),
        ("keepalive = 75", "keepalive = 5", {"keepalive > load balancer idle timeout"}),
        ("def post_worker_init(worker):", "def _unused(worker):", {"shutdown notice hook"}),
    ],
)
def test_a_broken_gunicorn_config_fails_with_its_reason(tmp_path: Path, old: str, new: str, rules: set[str]) -> None:
    path = broken(tmp_path, "gunicorn.conf.py", old, new)
    status, findings = run(["--gunicorn-conf", str(path)], environ={})
    assert status == 1 and {f.rule for f in findings if not f.ok} == rules


@pytest.mark.parametrize(
    ("text", "unit", "seconds"),
    [
        ("300s", "s", 300),
        ("300", "s", 300),
        ("5m", "s", 300),
        ("1h", "s", 3600),
        ("300", "ms", 0.3),
        ("50s", "ms", 50),
        ("1.5s", "ms", 1.5),
    ],
)
def test_durations_use_each_servers_default_unit(text: str, unit: str, seconds: float) -> None:
    assert parse_duration(text, unit) == pytest.approx(seconds)


def test_nginx_parser_ignores_comments_and_quotes() -> None:
    parsed = nginx_directives('# proxy_buffering on;\nlocation / { proxy_set_header Connection ""; proxy_buffering off; }')
    assert parsed["proxy_buffering"] == [["off"]] and parsed["proxy_set_header"] == [["Connection", ""]]


def test_rules_follow_the_heartbeat_setting() -> None:
    slow = load_settings({"WEBAPP_HEARTBEAT_SECONDS": "120"})
    text = (CONF / "nginx.conf").read_text().replace("proxy_read_timeout 300s;", "proxy_read_timeout 100s;")
    assert not next(f for f in nginx_rules(text, slow) if "read_timeout" in f.rule).ok
    assert all(f.ok for f in haproxy_rules((CONF / "haproxy.cfg").read_text(), slow))
    # Left out, nginx's 60 s default applies: fine for a 15 s heartbeat, not for a 61 s one.
    unset = (CONF / "nginx.conf").read_text().replace("proxy_read_timeout 300s;", "")
    assert next(f for f in nginx_rules(unset, load_settings({})) if "read_timeout" in f.rule).ok
    rule = next(f for f in nginx_rules(unset, load_settings({"WEBAPP_HEARTBEAT_SECONDS": "61"})) if "read_timeout" in f.rule)
    assert not rule.ok and "60s" in rule.detail


STALL_RULES = {
    "first-chunk limit and its retry fit the run deadline",
    "between-chunk limit below the run deadline",
    "between-chunk limit > heartbeat",
    "stall limits below the upstream client timeout",
}


@pytest.mark.parametrize(
    ("env", "rule", "says"),
    [
        ({"WEBAPP_FIRST_CHUNK_TIMEOUT_SECONDS": "150"}, "first-chunk limit and its retry fit the run deadline", "twice: 300s"),
        ({"WEBAPP_MAX_STREAM_SECONDS": "200"}, "first-chunk limit and its retry fit the run deadline", "twice: 240s"),
        ({"WEBAPP_BETWEEN_CHUNKS_TIMEOUT_SECONDS": "300"}, "between-chunk limit below the run deadline", "never fires"),
        ({"WEBAPP_BETWEEN_CHUNKS_TIMEOUT_SECONDS": "15"}, "between-chunk limit > heartbeat", "WEBAPP_HEARTBEAT_SECONDS=15s"),
        ({"WEBAPP_BETWEEN_CHUNKS_TIMEOUT_SECONDS": "0.06"}, "between-chunk limit > heartbeat", "0.06s"),  # ms for s
        (
            {"WEBAPP_UPSTREAM_TIMEOUT_SECONDS": "100"},
            "stall limits below the upstream client timeout",
            "WEBAPP_FIRST_CHUNK_TIMEOUT_SECONDS=120s",
        ),
    ],
)
def test_a_stall_limit_that_cannot_work_fails_with_its_reason(env: dict[str, str], rule: str, says: str) -> None:
    status, findings = run(SHIPPED, environ=env)
    failed = {f.rule: f for f in findings if not f.ok}
    assert status == 1 and set(failed) == {rule}, [f.line() for f in failed.values()]
    assert says in failed[rule].detail + failed[rule].fix and failed[rule].fix


def test_stall_limits_off_pass_and_the_shipped_ones_are_checked() -> None:
    _, shipped = run(SHIPPED, environ={})
    assert STALL_RULES <= {f.rule for f in shipped if f.ok}
    off = {"WEBAPP_FIRST_CHUNK_TIMEOUT_SECONDS": "0", "WEBAPP_BETWEEN_CHUNKS_TIMEOUT_SECONDS": "0", "WEBAPP_UPSTREAM_TIMEOUT_SECONDS": "1"}
    status, findings = run(SHIPPED, environ=off)
    assert status == 0 and all(f.ok for f in findings if f.rule in STALL_RULES)


def test_the_library_doctor_takes_the_stall_limits_on_its_command_line() -> None:
    from uncut.doctor import run as library_run

    conf = ["--gunicorn-conf", str(CONF / "gunicorn.conf.py")]
    assert library_run(conf)[0] == 0
    status, findings = library_run([*conf, "--first-chunk-timeout-seconds", "200"])
    assert status == 1 and {f.rule for f in findings if not f.ok} == {"first-chunk limit and its retry fit the run deadline"}
    status, findings = library_run([*conf, "--between-chunks-timeout-seconds", "10", "--heartbeat-seconds", "20"])
    assert status == 1 and {f.rule for f in findings if not f.ok} == {"between-chunk limit > heartbeat"}
    assert "stall limits below the upstream client timeout" not in {f.rule for f in findings}  # the library has no client
