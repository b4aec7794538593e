"""How each app under test is launched: the service and the three reference apps, one worker each.

Every one streams from the same upstream with the real ChatOpenAI and the
same client settings (no retries, usage in the stream). Only the service
uses ``conf/gunicorn.conf.py``; the references use plain command lines so
that nothing of the service's configuration helps or hurts them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from bench.procs import PYTHON, Child, free_port


@dataclass(frozen=True)
class Target:
    """One measured surface: which server, which path, and how to read its responses."""

    name: str
    server: str
    path: str
    mode: str  # load.py sink: text or sse
    label: str


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("service", "service", "/api/chat/stream", "text", "service (gevent, text)"),
        Target("service-sse", "service", "/api/chat/events", "sse", "service (gevent, SSE)"),
        Target("fastapi", "fastapi", "/api/chat/stream", "text", "ref a: FastAPI astream (uvicorn)"),
        Target("flask-gevent", "flask-gevent", "/api/chat/stream", "text", "ref b: Flask generator (gunicorn gevent)"),
        Target("flask-gthread", "flask-gthread", "/api/chat/stream", "text", "ref c: Flask generator (gunicorn gthread)"),
        Target(
            "flask-floor",
            "flask-floor",
            "/api/chat/stream",
            "text",
            "HTTP floor: Flask generator on the service's client (gunicorn gevent)",
        ),
    )
}
CEILING = "ceiling"
CEILING_LABEL = "bare llm.stream() ceiling (gevent, no HTTP)"
CEILING_RELAY = "ceiling-relay"  # the same, through the service's Producer + Relay: the relay's cost without HTTP
CEILING_RELAY_LABEL = "llm.stream() through the relay (gevent, no HTTP)"
CEILING_STOCK = "ceiling-stock"  # the bare loop on a stock ChatOpenAI, as the reference apps build it
CEILING_STOCK_LABEL = "bare llm.stream() on a stock ChatOpenAI (gevent, no HTTP)"
PSEUDO_APPS = (CEILING, CEILING_RELAY, CEILING_STOCK)


def clean_env(upstream_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The harness's environment without anything that would reconfigure an app, plus the upstream."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEBAPP_", "OPENAI_", "GUNICORN_", "LANGCHAIN_", "LANGSMITH_"))}
    env.update(PYTHONUNBUFFERED="1", OPENAI_API_KEY="bench-key-not-secret", OPENAI_BASE_URL=upstream_url, BENCH_MODEL="bench-model")
    env.update(extra or {})
    return env


def service(upstream_url: str, log_dir: Path, cpus: Sequence[int] | None, service_env: dict[str, str] | None = None, **_: object) -> Child:
    port = free_port()
    env = clean_env(
        upstream_url,
        {
            "WEBAPP_PROVIDER": "openai",
            "WEBAPP_MODEL": "bench-model",
            "WEBAPP_UPSTREAM_MAX_RETRIES": "0",
            "WEBAPP_MAX_CONCURRENT_STREAMS": "100000",
            "WEBAPP_MAX_STREAMS_PER_KEY": "0",
            "WEBAPP_LOG_LEVEL": "WARNING",
            "WEBAPP_ON_DISCONNECT": "cancel",
            # A closed loop measures the peak with every user served: a refused user would retry at once. The open
            # loop (bench.openloop) turns adaptive admission back on to measure what it buys.
            "WEBAPP_ADAPTIVE_ADMISSION": "false",
            "GUNICORN_WORKERS": "1",
            "GUNICORN_WORKER_CONNECTIONS": "20000",
            "GUNICORN_ACCESSLOG": "",  # none, like the reference apps
            **(service_env or {}),
        },
    )
    command = [PYTHON, "-m", "gunicorn", "-c", "conf/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "wsgi:app"]
    return Child("service", command, port=port, env=env, log_dir=log_dir, cpus=cpus)


def fastapi_ref(upstream_url: str, log_dir: Path, cpus: Sequence[int] | None, **_: int) -> Child:
    port = free_port()
    command = [
        PYTHON,
        "-m",
        "uvicorn",
        "bench.apps.fastapi_ref:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--no-access-log",
        "--log-level",
        "warning",
        "--timeout-graceful-shutdown",
        "2",
        "--backlog",
        "2048",
    ]
    return Child("fastapi", command, port=port, env=clean_env(upstream_url), log_dir=log_dir, cpus=cpus)


def _flask(
    worker_class: str,
    upstream_url: str,
    log_dir: Path,
    cpus: Sequence[int] | None,
    threads: int,
    name: str = "",
    extra_env: dict[str, str] | None = None,
) -> Child:
    port = free_port()
    command = [
        PYTHON,
        "-m",
        "gunicorn",
        "-k",
        worker_class,
        "--workers",
        "1",
        "--worker-connections",
        "20000",
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "--graceful-timeout",
        "2",
        "--timeout",
        "60",
    ]
    if worker_class == "gthread":
        command += ["--threads", str(threads)]
    command.append("bench.apps.flask_ref:app")
    return Child(name or f"flask-{worker_class}", command, port=port, env=clean_env(upstream_url, extra_env), log_dir=log_dir, cpus=cpus)


def flask_gevent(upstream_url: str, log_dir: Path, cpus: Sequence[int] | None, **_: int) -> Child:
    return _flask("gevent", upstream_url, log_dir, cpus, 1)


def flask_gthread(upstream_url: str, log_dir: Path, cpus: Sequence[int] | None, threads: int = 64, **_: int) -> Child:
    return _flask("gthread", upstream_url, log_dir, cpus, threads)


def flask_floor(
    upstream_url: str, log_dir: Path, cpus: Sequence[int] | None, service_env: dict[str, str] | None = None, **_: object
) -> Child:
    """Reference (b)'s view and server on the service's model, resolver and GC settings: no relay, all else alike."""
    env = {"BENCH_CLIENT": "service", "GEVENT_RESOLVER": "ares", **(service_env or {})}
    return _flask("gevent", upstream_url, log_dir, cpus, 1, name="flask-floor", extra_env=env)


SERVERS: dict[str, Callable[..., Child]] = {
    "service": service,
    "fastapi": fastapi_ref,
    "flask-gevent": flask_gevent,
    "flask-gthread": flask_gthread,
    "flask-floor": flask_floor,
}
