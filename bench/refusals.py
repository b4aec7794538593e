"""``python -m bench.refusals``: the worker's CPU per refused request, with the refusal decided in the view and in the gate.

One gunicorn gevent worker on the scripted model with one slot, held by a
stream whose first token is a minute off; a closed loop of clients then
sends new streams, every one of which is refused: on kept-alive
connections (as the SDKs' pools reuse them), then on a new connection per
request (gevent's accept and close included). The worker's CPU time
(user and system, from /proc) over the loop, divided by the refusals it
answered, is what one refusal costs it. Rows, one run:

- ``view``: decided in the Flask view (``WEBAPP_ADMISSION_GATE=false``),
  after the request is built, the key checked and the body read;
- ``gate``: decided in the admission gate, from the WSGI environ;
- ``gate, with the line``: the gate with the default start budget, so the
  refusals carry a scheduled ``Retry-After`` (and one request waits its turn).

Writes ``bench/REFUSALS.md`` and ``bench/refusals.json``.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path
from typing import Any

from bench.procs import PYTHON, Child, cpu_seconds, free_port, run_json
from bench.run import BENCH_DIR, log
from bench.servers import clean_env

HELD = {
    "WEBAPP_PROVIDER": "scripted",
    "WEBAPP_SCRIPTED_TTFT_MS": "60000",
    "WEBAPP_MAX_CONCURRENT_STREAMS": "1",
    "WEBAPP_MAX_STREAMS_PER_KEY": "0",
    "WEBAPP_LOG_LEVEL": "WARNING",
    "GUNICORN_WORKERS": "1",
    "GUNICORN_ACCESSLOG": "",
}
ROWS = {
    "view": {"WEBAPP_ADMISSION_GATE": "false", "WEBAPP_ADMISSION_START_BUDGET_MS": "0"},
    "gate": {"WEBAPP_ADMISSION_GATE": "true", "WEBAPP_ADMISSION_START_BUDGET_MS": "0"},
    "gate, with the line": {"WEBAPP_ADMISSION_GATE": "true"},
}


def hold_the_slot(url: str, stop: threading.Event) -> None:
    """One stream that holds the worker's only slot (its first token is a minute off) until told to stop."""
    import httpx

    try:
        with httpx.stream("POST", url + "/api/chat/events", json={"message": "hold"}, timeout=90) as response:
            for _ in response.iter_raw():
                if stop.is_set():
                    return
    except httpx.HTTPError:
        return


def measure(name: str, env: dict[str, str], args: argparse.Namespace, logs: Path, new_connections: bool) -> dict[str, Any]:
    port = free_port()
    command = [PYTHON, "-m", "gunicorn", "-c", "conf/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "wsgi:app"]
    server = Child(name.replace(" ", "-").replace(",", ""), command, port=port, env=clean_env("", {**HELD, **env}), log_dir=logs)
    server.start()
    stop = threading.Event()
    holder = threading.Thread(target=hold_the_slot, args=(server.url, stop), daemon=True)
    try:
        worker = server.worker_pid()
        holder.start()
        time.sleep(1.0)  # the slot is taken
        before = cpu_seconds(worker)
        result = run_json(
            [
                PYTHON,
                "-m",
                "bench.load",
                "--url",
                server.url,
                "--path",
                "/api/chat/events",
                "--mode",
                "sse",
                "--tokens",
                "1",
                "--interval",
                "0.01",
                "--concurrency",
                str(args.concurrency),
                "--duration",
                str(args.seconds),
                "--stream-timeout",
                "15",
                *(["--new-connections"] if new_connections else []),
            ],
            out=logs / f"{server.name}.json",
            timeout=args.seconds + 60,
            env=clean_env(""),
        )
        spent = cpu_seconds(worker) - before
    finally:
        stop.set()
        server.stop()
    refused = result["errors"].get("refused", 0)
    row = {
        "row": name,
        "connections": "new per request" if new_connections else "kept alive",
        "refusals": refused,
        "seconds": args.seconds,
        "worker_cpu_s": round(spent, 3),
        "cpu_per_refusal_us": round(spent / max(1, refused) * 1e6, 1),
        "refusals_per_s": round(refused / args.seconds, 1),
    }
    log(f"{name} ({row['connections']}): {refused} refusals, worker CPU {spent:.2f} s: {row['cpu_per_refusal_us']} µs each")
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.refusals", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--out", type=Path, default=BENCH_DIR)
    args = parser.parse_args(argv)
    logs = args.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    rows = [measure(name, env, args, logs, new) for new in (False, True) for name, env in ROWS.items()]
    (args.out / "refusals.json").write_text(json.dumps({"rows": rows}, indent=1))
    lines = [
        "# The worker's CPU per refusal",
        "",
        f"One gevent worker with its one slot held; {args.concurrency} clients in a closed loop for {args.seconds:g} s, "
        "every request refused. CPU: the worker's user + system time over the loop, per refusal.",
        "",
        "| where the refusal is decided | connections | refusals | refusals/s | worker CPU s | CPU per refusal µs |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['row']} | {r['connections']} | {r['refusals']:,} | {r['refusals_per_s']:,} | {r['worker_cpu_s']} "
        f"| {r['cpu_per_refusal_us']:,} |"
        for r in rows
    ]
    (args.out / "REFUSALS.md").write_text("\n".join(lines) + "\n")
    log(f"wrote {args.out / 'REFUSALS.md'}")


if __name__ == "__main__":
    main()
