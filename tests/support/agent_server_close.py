"""A stream the WSGI server closes before its first byte, through an adapter of the Agent Server API.

    python -m tests.support.agent_server_close django|wsgi [--no-close]

Calls the example's WSGI app (examples/agent_server.py) as a server does,
starts a run's stream, and closes the body without reading it (a client
gone before the first byte); ``--no-close`` drops it without closing, the
negative control. Prints JSON: the admission slots still held, and whether
the run's log has ended and how. Its own process: Django's settings are
process-wide.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from typing import Any, Callable, Iterable
from wsgiref.util import setup_testing_defaults

SETTLE_SECONDS = 2.0


def call(
    app: Callable[..., Iterable[bytes]], method: str, path: str, body: dict[str, Any] | None = None
) -> tuple[str, dict[str, str], Iterable[bytes]]:
    raw = json.dumps(body).encode() if body is not None else b""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(raw)),
        "wsgi.input": io.BytesIO(raw),
        "SERVER_NAME": "127.0.0.1",
    }
    setup_testing_defaults(environ)
    started: list[Any] = []
    result = app(environ, lambda status, headers, exc_info=None: started.append((status, headers)))
    status, headers = started[0]
    return status, {k.lower(): v for k, v in headers}, result


def main(adapter: str, close: bool) -> dict[str, Any]:
    if adapter == "django":
        os.environ["DJANGO_SETTINGS_MODULE"] = "examples.agent_server"
    from examples import agent_server as example
    from uncut.django import streams as django_streams
    from uncut.wsgi import default_streams

    built: list[Any] = []  # the AgentServer the adapter builds at its first request: runs take its slots
    build = example.build_server
    example.build_server = lambda streams: built.append(build(streams)) or built[-1]  # type: ignore[assignment]
    app = example.django_app() if adapter == "django" else example.wsgi_app
    streams = django_streams() if adapter == "django" else default_streams()

    status, _, result = call(app, "POST", "/langgraph/threads", {})
    thread_id = json.loads(b"".join(result))["thread_id"]
    getattr(result, "close", lambda: None)()
    run = {"assistant_id": "agent", "input": {"messages": [{"role": "user", "content": "hi"}]}, "stream_mode": ["values"]}
    status, headers, result = call(app, "POST", f"/langgraph/threads/{thread_id}/runs/stream", run)
    run_id = headers["content-location"].rsplit("/", 1)[-1]
    limiter = built[0].limiter
    held_before = limiter.active
    if close:
        result.close()  # type: ignore[attr-defined]
    del result
    deadline = time.monotonic() + SETTLE_SECONDS
    log = streams.store.open(run_id)
    while time.monotonic() < deadline and not (log is not None and log.finished):
        time.sleep(0.05)
    last = log.last() if log is not None else None
    return {
        "status": status,
        "content_type": headers.get("content-type"),
        "held_before": held_before,
        "held_after": limiter.active,
        "log_finished": bool(log is not None and log.finished),
        "last": None if last is None else {"kind": last.kind, "data": last.data},
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], "--no-close" not in sys.argv[2:])))
