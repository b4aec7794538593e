"""Check a deployment's timeout budget: ``uncut-doctor --gunicorn-conf FILE [--nginx FILE] [--haproxy FILE]``.

Reads the app's streaming settings (``--heartbeat-seconds``,
``--max-stream-seconds``, the stall limits; the library's defaults otherwise), gunicorn's
(from the file given, else ``./gunicorn.conf.py`` as gunicorn itself
would) and the proxy files it is given, and reports each rule of the
timeout budget as OK or as a problem with its fix. Exits 0 only when every
rule holds. A service built on the library can wrap ``main`` to read its
own settings instead of the command-line flags.
"""

from __future__ import annotations

import argparse
import re
import runpy
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

from uncut.options import StreamOptions

__all__ = ["Finding", "arguments", "findings_for", "main", "report", "run"]

DEFAULT_GUNICORN_CONF = Path("gunicorn.conf.py")  # where gunicorn itself looks, in the directory it starts in
# gunicorn's own defaults, for settings a config file leaves out.
GUNICORN_DEFAULTS = {"worker_class": "sync", "timeout": 30, "graceful_timeout": 30, "keepalive": 2, "preload_app": False}
NGINX_DEFAULT_TIMEOUT = 60.0
STREAM_TYPES = ("text/event-stream", "text/plain")


@dataclass(frozen=True)
class Finding:
    rule: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        if self.ok:
            return f"OK       {self.rule}: {self.detail}"
        return f"PROBLEM  {self.rule}: {self.detail}\n         fix: {self.fix}"


def check(rule: str, ok: bool, detail: str, fix: str) -> Finding:
    return Finding(rule, ok, detail, "" if ok else fix)


class Budget(Protocol):
    """The app's side of the budget: what the rules compare the servers' limits with."""

    # Read-only (properties), so a frozen dataclass such as AppBudget satisfies it too.
    @property
    def heartbeat_seconds(self) -> float: ...
    @property
    def max_stream_seconds(self) -> float: ...
    @property
    def shutdown_notice(self) -> bool: ...
    @property
    def first_chunk_timeout_seconds(self) -> float: ...
    @property
    def between_chunks_timeout_seconds(self) -> float: ...

    def setting_name(self, option: str) -> str: ...


@dataclass(frozen=True)
class AppBudget:
    """The budget given on the command line, the library's defaults otherwise."""

    heartbeat_seconds: float = StreamOptions().heartbeat_seconds
    max_stream_seconds: float = StreamOptions().max_stream_seconds or 300.0
    shutdown_notice: bool = True
    first_chunk_timeout_seconds: float = StreamOptions().first_chunk_timeout_seconds
    between_chunks_timeout_seconds: float = StreamOptions().between_chunks_timeout_seconds

    def setting_name(self, option: str) -> str:
        return option


# -- reading the files ------------------------------------------------------------------


def parse_duration(text: str, default_unit: str) -> float:
    """Seconds from an nginx (default unit s) or HAProxy (default unit ms) duration."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(us|ms|s|m|h|d)?", text.strip())
    if not match:
        raise ValueError(f"not a duration: {text!r}")
    factor = {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2) or default_unit]
    return float(match.group(1)) * factor


def nginx_directives(text: str) -> dict[str, list[list[str]]]:
    """Every directive of an nginx config, by name, with its arguments (quotes and comments handled)."""
    tokens = re.findall(r'"[^"]*"|\'[^\']*\'|#[^\n]*|[{};]|[^\s{};]+', text)
    found: dict[str, list[list[str]]] = {}
    statement: list[str] = []
    for token in tokens:
        if token.startswith("#"):
            continue
        if token in (";", "{", "}"):
            if statement:
                found.setdefault(statement[0], []).append([t.strip("\"'") for t in statement[1:]])
            statement = []
        else:
            statement.append(token)
    return found


def haproxy_lines(text: str) -> list[list[str]]:
    return [line.split("#", 1)[0].split() for line in text.splitlines() if line.split("#", 1)[0].strip()]


def load_gunicorn(path: Path) -> dict[str, Any]:
    namespace = runpy.run_path(str(path))
    return {**GUNICORN_DEFAULTS, **{k: v for k, v in namespace.items() if not k.startswith("_")}}


# -- the rules ----------------------------------------------------------------------------


def app_rules(settings: Budget) -> list[Finding]:
    name = settings.setting_name("heartbeat_seconds")
    return [
        check(
            "heartbeats on",
            settings.heartbeat_seconds > 0,
            f"{name}={settings.heartbeat_seconds:g}",
            f"set {name} (default 15) below every idle timeout in front of the app",
        ),
        *stall_rules(settings),
    ]


def stall_rules(settings: Budget) -> list[Finding]:
    """The stall limits (uncut.stall) against the limits they work inside; a limit of 0 is off and always fits.

    No rule compares them with the proxies' idle timeouts: heartbeats keep
    a silent stream alive there. gunicorn's graceful_timeout needs none of
    its own either: it is held to the run deadline, which holds these.
    """
    first, between = settings.first_chunk_timeout_seconds, settings.between_chunks_timeout_seconds
    first_name, between_name = settings.setting_name("first_chunk_timeout_seconds"), settings.setting_name("between_chunks_timeout_seconds")
    longest, longest_name = settings.max_stream_seconds, settings.setting_name("max_stream_seconds")
    heartbeat, heartbeat_name = settings.heartbeat_seconds, settings.setting_name("heartbeat_seconds")
    findings = [
        # A first-chunk stall is retried once with the full wait: past the deadline the run would end as a
        # non-retryable `timeout` instead, and a limit at or past it never fires at all.
        check(
            "first-chunk limit and its retry fit the run deadline",
            not first or 2 * first < longest,
            f"{first_name}={first:g}s (twice: {2 * first:g}s), {longest_name}={longest:g}s" if first else f"{first_name}=0 (off)",
            f"lower {first_name} below half of {longest_name}, or raise {longest_name}",
        ),
        check(
            "between-chunk limit below the run deadline",
            not between or between < longest,
            f"{between_name}={between:g}s, {longest_name}={longest:g}s" if between else f"{between_name}=0 (off)",
            f"lower {between_name} below {longest_name} (a limit past the deadline never fires)",
        ),
        # A pause no longer than one heartbeat interval is one the heartbeats were built to carry: a limit
        # there cuts healthy pauses (and is most often a unit mistake).
        check(
            "between-chunk limit > heartbeat",
            not between or not heartbeat or between > heartbeat,
            f"{between_name}={between:g}s, {heartbeat_name}={heartbeat:g}s" if between else f"{between_name}=0 (off)",
            f"raise {between_name} above the heartbeat (default 60)",
        ),
    ]
    client_timeout = getattr(settings, "upstream_timeout_seconds", None)  # the service's openai client read timeout
    if client_timeout is not None:
        client_name = settings.setting_name("upstream_timeout_seconds")
        limits = [(n, v) for n, v in ((first_name, first), (between_name, between)) if v]
        too_long = [f"{n}={v:g}s" for n, v in limits if v >= client_timeout]
        # The client's own read timeout would end the wait first: as an error mid-call, never retried.
        findings.append(
            check(
                "stall limits below the upstream client timeout",
                not too_long,
                f"{', '.join(f'{n}={v:g}s' for n, v in limits) or 'stall limits off'}, {client_name}={client_timeout:g}s",
                f"raise {client_name} above {', '.join(too_long)}, or lower those",
            )
        )
    return findings


def gunicorn_rules(conf: dict[str, Any], settings: Budget) -> list[Finding]:
    worker = str(conf["worker_class"]).rsplit(".", 1)[-1].lower()
    is_gevent = "gevent" in worker
    longest = settings.max_stream_seconds
    findings = [
        check(
            "gunicorn worker class",
            worker not in ("sync", "syncworker"),
            f"worker_class={conf['worker_class']}",
            "use worker_class = 'gevent': the sync worker kills streams longer than `timeout`",
        ),
        check(
            "no preload under gevent",
            not (is_gevent and conf["preload_app"]),
            f"preload_app={conf['preload_app']}",
            "set preload_app = False, or call gevent.monkey.patch_all() on the first lines of the gunicorn config",
        ),
        check(
            "graceful_timeout >= longest stream",
            conf["graceful_timeout"] >= longest,
            f"graceful_timeout={conf['graceful_timeout']}s, {settings.setting_name('max_stream_seconds')}={longest:g}s",
            f"raise graceful_timeout to at least {longest:g} (a deploy would cut longer streams)",
        ),
        check(
            "keepalive > load balancer idle timeout",
            conf["keepalive"] > NGINX_DEFAULT_TIMEOUT,
            f"keepalive={conf['keepalive']}s, common load balancer idle timeout {NGINX_DEFAULT_TIMEOUT:g}s",
            "set keepalive above the idle timeout of the balancer in front (75 for the usual 60 s)",
        ),
        check(
            "shutdown notice hook",
            not settings.shutdown_notice or callable(conf.get("post_worker_init")),
            "post_worker_init " + ("present" if callable(conf.get("post_worker_init")) else "missing"),
            "add a post_worker_init hook that calls uncut.shutdown.watch_gunicorn_worker(worker), as conf/gunicorn.conf.py does",
        ),
    ]
    if not is_gevent:
        findings.append(
            check(
                "worker timeout >= longest stream",
                conf["timeout"] >= longest,
                f"timeout={conf['timeout']}s with worker_class={conf['worker_class']}",
                f"raise timeout to at least {longest:g}, or use the gevent worker",
            )
        )
    return findings


def _nginx_value(directives: dict[str, list[list[str]]], name: str) -> str | None:
    values = directives.get(name)
    return values[-1][0] if values and values[-1] else None


def nginx_rules(text: str, settings: Budget) -> list[Finding]:
    d = nginx_directives(text)
    heartbeat = settings.heartbeat_seconds
    findings = [
        check(
            "nginx proxy_buffering off",
            _nginx_value(d, "proxy_buffering") == "off",
            f"proxy_buffering {_nginx_value(d, 'proxy_buffering') or 'on (default)'}",
            "add `proxy_buffering off;` to the location: buffering holds tokens until the end",
        ),
        check(
            "nginx proxy_http_version 1.1",
            _nginx_value(d, "proxy_http_version") == "1.1",
            f"proxy_http_version {_nginx_value(d, 'proxy_http_version') or '1.0 (default before 1.29.7)'}",
            'add `proxy_http_version 1.1;` and `proxy_set_header Connection "";`: over HTTP/1.0 a cut stream looks complete',
        ),
        check(
            "nginx proxy_cache off",
            _nginx_value(d, "proxy_cache") in (None, "off"),
            f"proxy_cache {_nginx_value(d, 'proxy_cache') or 'off (default)'}",
            "add `proxy_cache off;` to the stream location",
        ),
    ]
    for name in ("proxy_read_timeout", "proxy_send_timeout"):
        raw = _nginx_value(d, name)
        seconds = parse_duration(raw, "s") if raw else NGINX_DEFAULT_TIMEOUT
        findings.append(
            check(
                f"nginx {name} > heartbeat",
                seconds > heartbeat > 0,
                f"{name} {seconds:g}s, heartbeat {heartbeat:g}s",
                f"set `{name}` well above the heartbeat (we ship 300s), or lower {settings.setting_name('heartbeat_seconds')}",
            )
        )
    gzip_on = _nginx_value(d, "gzip") == "on"
    gzip_types = {t for args in d.get("gzip_types", []) for t in args}
    compressed = sorted(t for t in gzip_types if t in STREAM_TYPES or t == "*") if gzip_on else []
    findings.append(
        check(
            "nginx gzip leaves streams alone",
            not compressed,
            f"gzip {'on' if gzip_on else 'off'}, stream types compressed: {', '.join(compressed) or 'none'}",
            "remove text/event-stream, text/plain and * from gzip_types: compression buffers streams",
        )
    )
    return findings


def haproxy_rules(text: str, settings: Budget) -> list[Finding]:
    lines = haproxy_lines(text)
    heartbeat = settings.heartbeat_seconds
    findings = []
    for side in ("server", "client"):
        values = [words[2] for words in lines if words[:2] == ["timeout", side] and len(words) > 2]
        shortest = min((parse_duration(v, "ms") for v in values), default=None)
        findings.append(
            check(
                f"haproxy timeout {side} > heartbeat",
                shortest is not None and shortest > heartbeat > 0,
                f"timeout {side} {'unset (no limit, HAProxy warns)' if shortest is None else f'{shortest:g}s'}, heartbeat {heartbeat:g}s",
                f"set `timeout {side}` well above the heartbeat (we ship 300s)",
            )
        )
    compressed = sorted({t for words in lines if words[:2] == ["compression", "type"] for t in words[2:] if t in STREAM_TYPES})
    findings.append(
        check(
            "haproxy compression leaves streams alone",
            not compressed,
            f"stream types compressed: {', '.join(compressed) or 'none'}",
            "remove text/event-stream and text/plain from `compression type`",
        )
    )
    return findings


# -- the command --------------------------------------------------------------------------


def arguments(prog: str, default_gunicorn_conf: Path) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--gunicorn-conf", type=Path, default=default_gunicorn_conf, help="gunicorn config file (default: %(default)s)")
    parser.add_argument("--nginx", type=Path, help="an nginx config to check")
    parser.add_argument("--haproxy", type=Path, help="an HAProxy config to check")
    return parser


def findings_for(args: argparse.Namespace, settings: Budget) -> list[Finding]:
    """Every rule the given files and settings are subject to."""
    findings = app_rules(settings)
    if args.gunicorn_conf.exists():
        findings += gunicorn_rules(load_gunicorn(args.gunicorn_conf), settings)
    else:
        findings.append(
            check(
                "gunicorn config found",
                False,
                f"{args.gunicorn_conf} does not exist",
                "pass --gunicorn-conf PATH (the file you start gunicorn with: gunicorn -c PATH)",
            )
        )
    if args.nginx:
        findings += nginx_rules(args.nginx.read_text(), settings)
    if args.haproxy:
        findings += haproxy_rules(args.haproxy.read_text(), settings)
    return findings


def report(findings: list[Finding]) -> int:
    for finding in findings:
        print(finding.line())
    problems = sum(not f.ok for f in findings)
    print(f"\n{len(findings) - problems} OK, {problems} problem{'s' if problems != 1 else ''}")
    return 0 if not problems else 1


def run(argv: Sequence[str] | None = None) -> tuple[int, list[Finding]]:
    parser = arguments("uncut-doctor", DEFAULT_GUNICORN_CONF)
    parser.add_argument("--heartbeat-seconds", type=float, default=AppBudget.heartbeat_seconds)
    parser.add_argument("--max-stream-seconds", type=float, default=AppBudget.max_stream_seconds)
    parser.add_argument("--no-shutdown-notice", action="store_true", help="the app does not send server_shutdown")
    parser.add_argument("--first-chunk-timeout-seconds", type=float, default=AppBudget.first_chunk_timeout_seconds)
    parser.add_argument("--between-chunks-timeout-seconds", type=float, default=AppBudget.between_chunks_timeout_seconds)
    args = parser.parse_args(argv)
    budget = AppBudget(
        args.heartbeat_seconds,
        args.max_stream_seconds,
        not args.no_shutdown_notice,
        args.first_chunk_timeout_seconds,
        args.between_chunks_timeout_seconds,
    )
    findings = findings_for(args, budget)
    return (0 if all(f.ok for f in findings) else 1), findings


def main(argv: Sequence[str] | None = None) -> int:
    try:
        status, findings = run(argv)
    except (OSError, ValueError) as exc:
        print(f"doctor: {exc}", file=sys.stderr)
        return 2
    report(findings)
    return status


if __name__ == "__main__":
    sys.exit(main())
