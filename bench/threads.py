"""``python -m bench.threads``: what keeping threads costs, and whether the database holds the worker's loop.

1. **Checkpointer cost per graph step.** The demo thread agent (create_agent
   + HumanInTheLoopMiddleware) on the scripted model with no delays runs
   the same turns with InMemorySaver, SqliteSaver (WAL, a file) and
   PostgresSaver (a psycopg pool, a local server started here): the time
   per turn over InMemorySaver's, divided by the turn's checkpointed steps,
   is one step's cost; the turn's added latency is shown whole too.
2. **A slow query and the loop.** Under gevent (monkey-patched, as a
   gunicorn gevent worker), a greenlet ticks every 10 ms while another runs
   ``SELECT pg_sleep(1)`` through the pool: the largest tick gap says
   whether the query held the loop. Then the same with SQLite while
   another process holds its write lock for 1 s: sqlite3 waits in C.
3. **Lease recovery** is measured by tests/e2e/test_threads.py (printed).

Writes ``bench/THREADS.md`` and ``bench/threads.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
TURNS = 40


def _agent(checkpointer: Any) -> Any:
    from uncut.scripted import ScriptedChatModel
    from webapp.agent import build_thread_agent

    return build_thread_agent(ScriptedChatModel(ttft=0, interval=0), 0.0, checkpointer)


def _turn_times(checkpointer: Any, turns: int) -> tuple[list[float], float]:
    """Seconds per turn ("what time is it": model, tool, model), and the checkpointed steps per turn."""
    agent = _agent(checkpointer)
    times = []
    steps = 0.0
    for index in range(turns):
        config = {"configurable": {"thread_id": f"bench-{index % 8}"}}
        started = time.perf_counter()
        for _ in agent.stream({"messages": [("user", "what time is it")]}, config, stream_mode="updates"):
            pass
        times.append(time.perf_counter() - started)
        if index == turns - 1:
            steps = float(len(list(agent.get_state_history(config, limit=1000))) / (index // 8 + 1))
    return times, steps


def checkpointer_costs(postgres_url: str | None, turns: int) -> dict[str, Any]:
    from langgraph.checkpoint.memory import InMemorySaver

    from webapp.thread_store import open_thread_store

    rows: dict[str, Any] = {}
    savers: dict[str, Any] = {"memory": InMemorySaver()}
    stores = []
    with tempfile.TemporaryDirectory() as tmp:
        stores.append(open_thread_store(f"sqlite:///{tmp}/bench.db", 3600, 0, 4))
        savers["sqlite"] = stores[-1].checkpointer
        if postgres_url:
            stores.append(open_thread_store(postgres_url, 3600, 0, 4))
            savers["postgres"] = stores[-1].checkpointer
        for name, saver in savers.items():
            _turn_times(saver, 4)  # warm: imports, tables, prepared paths
            times, steps = _turn_times(saver, turns)
            rows[name] = {"turn_p50_ms": round(statistics.median(times) * 1000, 2), "steps_per_turn": round(steps, 1)}
        for store in stores:
            store.close()
    base = rows["memory"]["turn_p50_ms"]
    for name, row in rows.items():
        row["added_per_turn_ms"] = round(row["turn_p50_ms"] - base, 2)
        row["per_step_us"] = round(row["added_per_turn_ms"] * 1000 / max(1.0, row["steps_per_turn"]), 0)
    return rows


_LOOP_PROBE = r"""
import gevent.monkey; gevent.monkey.patch_all()
import json, sys, time, gevent
kind, target = sys.argv[1], sys.argv[2]
gaps = []
stop = False
def tick():
    last = time.monotonic()
    while not stop:
        gevent.sleep(0.01)
        now = time.monotonic(); gaps.append(now - last); last = now
def work():
    if kind == "postgres":
        from psycopg_pool import ConnectionPool
        with ConnectionPool(target, min_size=1, max_size=2, open=True) as pool, pool.connection() as conn:
            conn.execute("SELECT 1"); time.sleep(0.2)
            started = time.monotonic(); conn.execute("SELECT pg_sleep(1)"); return time.monotonic() - started
    import sqlite3
    conn = sqlite3.connect(target, timeout=5, isolation_level=None); conn.execute("PRAGMA journal_mode=WAL")
    time.sleep(0.2)
    started = time.monotonic(); conn.execute("INSERT INTO t VALUES (1)"); return time.monotonic() - started
ticker = gevent.spawn(tick)
took = work()
stop = True; ticker.join()
print(json.dumps({"query_s": round(took, 3), "max_tick_gap_ms": round(max(gaps) * 1000, 1), "ticks": len(gaps)}))
"""

_SQLITE_HOLDER = r"""
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None); conn.execute("PRAGMA journal_mode=WAL")
conn.execute("BEGIN IMMEDIATE"); conn.execute("INSERT INTO t VALUES (0)"); print("held", flush=True)
time.sleep(1.0); conn.execute("COMMIT")
"""


def loop_probes(postgres_url: str | None) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    if postgres_url:
        out = subprocess.run([sys.executable, "-c", _LOOP_PROBE, "postgres", postgres_url], capture_output=True, text=True, timeout=60)
        rows["postgres pg_sleep(1)"] = json.loads(out.stdout.strip().splitlines()[-1])
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/lock.db"
        import sqlite3

        sqlite3.connect(path).execute("CREATE TABLE t (x INTEGER)").connection.commit()
        holder = subprocess.Popen([sys.executable, "-c", _SQLITE_HOLDER, path], stdout=subprocess.PIPE, text=True)
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        out = subprocess.run([sys.executable, "-c", _LOOP_PROBE, "sqlite", path], capture_output=True, text=True, timeout=60)
        holder.wait(10)
        rows["sqlite write behind another's 1 s lock"] = json.loads(out.stdout.strip().splitlines()[-1])
    return rows


def report(costs: dict[str, Any], probes: dict[str, Any], postgres: str | None) -> str:
    lines = [
        "# Threads: what checkpoints cost, and whether the database holds the loop",
        "",
        f"`python -m bench.threads`: the demo thread agent on the scripted model (no delays), {TURNS} turns of"
        ' "what time is it" (model, tool, model) over 8 threads, per checkpointer. Per step: the turn\'s time over'
        " InMemorySaver's, divided by the checkpoints a turn writes." + ("" if postgres else " (PostgreSQL was not available.)"),
        "",
        "| checkpointer | turn p50 ms | checkpoints per turn | added per turn ms | per step µs |",
        "|---|---|---|---|---|",
    ]
    for name, row in costs.items():
        lines.append(f"| {name} | {row['turn_p50_ms']} | {row['steps_per_turn']} | {row['added_per_turn_ms']} | {row['per_step_us']:.0f} |")
    lines += [
        "",
        "Under gevent, a greenlet ticking every 10 ms beside one slow database call:",
        "",
        "| call | call took s | largest tick gap ms |",
        "|---|---|---|",
    ]
    for name, row in probes.items():
        lines.append(f"| {name} | {row['query_s']} | {row['max_tick_gap_ms']} |")
    lines += [
        "",
        "A gap near 10 ms: the call waited cooperatively, other streams went on. A gap near the call's time: it held the"
        " worker's loop (sqlite3 waits for a lock in C; keep SQLite for one host's few workers, or use PostgreSQL).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", help="a PostgreSQL URL; default: start one (Debian's postgresql)")
    parser.add_argument("--turns", type=int, default=TURNS)
    parser.add_argument("--out", type=Path, default=BENCH_DIR)
    args = parser.parse_args()
    server = None
    url = args.postgres
    if url is None:
        try:
            from tests.support.postgres_server import PostgresServer

            server = PostgresServer(Path(tempfile.mkdtemp())).start()
            url = server.url
        except BaseException as exc:  # noqa: BLE001 - pytest's skip too: measure what can be measured
            print(f"no PostgreSQL: {exc}", file=sys.stderr)
    try:
        costs = checkpointer_costs(url, args.turns)
        probes = loop_probes(url)
    finally:
        if server is not None:
            server.remove()
    (args.out / "threads.json").write_text(json.dumps({"checkpointers": costs, "loop": probes}, indent=2) + "\n")
    (args.out / "THREADS.md").write_text(report(costs, probes, url))
    print(report(costs, probes, url))


if __name__ == "__main__":
    main()
