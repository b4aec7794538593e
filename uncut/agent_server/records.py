"""Internal: where the Agent Server keeps its threads' and runs' records: this process's memory, or a SQL database.

A record is a JSON document under ``(kind, key)`` with its owner and thread;
kinds are ``thread`` and ``run``. The graph's state is not here (it is the
checkpointer's); a record holds what the API shows besides it (metadata,
status, timestamps). ``MemoryRecords`` serves one process;
``SqlRecords`` serves every worker and host on one database (SQLite or
PostgreSQL, through a connection factory that commits on exit).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable, ContextManager, Protocol


class Records(Protocol):
    def add(self, kind: str, key: str, owner: str, thread_id: str | None, doc: dict[str, Any]) -> bool:
        """Store a new record; False (and nothing changed) when ``(kind, key)`` exists."""
        ...

    def put(self, kind: str, key: str, owner: str, thread_id: str | None, doc: dict[str, Any]) -> None: ...
    def get(self, kind: str, key: str) -> tuple[str, dict[str, Any]] | None:
        """``(owner, doc)``, or None."""
        ...

    def delete(self, kind: str, key: str) -> None: ...
    def find(self, kind: str, owner: str, thread_id: str | None = None) -> list[dict[str, Any]]:
        """An owner's records of ``kind`` (of one thread), newest first."""
        ...

    def count(self, kind: str, owner: str) -> int: ...


class MemoryRecords:
    """Records in this process: for one worker, tests, and scripts."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], tuple[str, str | None, float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def add(self, kind: str, key: str, owner: str, thread_id: str | None, doc: dict[str, Any]) -> bool:
        with self._lock:
            if (kind, key) in self._rows:
                return False
            self._rows[(kind, key)] = (owner, thread_id, time.time(), json.loads(json.dumps(doc)))
            return True

    def put(self, kind: str, key: str, owner: str, thread_id: str | None, doc: dict[str, Any]) -> None:
        with self._lock:
            created = self._rows.get((kind, key), (None, None, time.time(), None))[2]
            self._rows[(kind, key)] = (owner, thread_id, created, json.loads(json.dumps(doc)))

    def get(self, kind: str, key: str) -> tuple[str, dict[str, Any]] | None:
        row = self._rows.get((kind, key))
        return None if row is None else (row[0], json.loads(json.dumps(row[3])))

    def delete(self, kind: str, key: str) -> None:
        with self._lock:
            self._rows.pop((kind, key), None)

    def find(self, kind: str, owner: str, thread_id: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            rows = [r for (k, _), r in self._rows.items() if k == kind and r[0] == owner and (thread_id is None or r[1] == thread_id)]
        rows.sort(key=lambda r: r[2], reverse=True)
        return [json.loads(json.dumps(r[3])) for r in rows]

    def count(self, kind: str, owner: str) -> int:
        with self._lock:
            return sum(1 for (k, _), r in self._rows.items() if k == kind and r[0] == owner)


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS uncut_agent_records (kind TEXT NOT NULL, record_key TEXT NOT NULL, owner TEXT NOT NULL,"
    " thread_id TEXT, created_at DOUBLE PRECISION NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (kind, record_key))",
    "CREATE INDEX IF NOT EXISTS uncut_agent_records_owner ON uncut_agent_records (kind, owner, created_at)",
    "CREATE INDEX IF NOT EXISTS uncut_agent_records_thread ON uncut_agent_records (kind, thread_id)",
)


class SqlRecords:
    """Records in one table of a SQL database every worker shares; ``placeholder`` is ``?`` (SQLite) or ``%s`` (psycopg)."""

    def __init__(self, connection: Callable[[], ContextManager[Any]], placeholder: str = "?") -> None:
        self._connection = connection
        self._p = placeholder
        with self._connection() as db:
            for statement in _SCHEMA:
                db.execute(statement)

    def _run(self, sql: str, args: tuple[Any, ...]) -> tuple[int, list[Any]]:
        with self._connection() as db:
            cursor = db.execute(sql.replace("?", self._p), args)
            return cursor.rowcount, (cursor.fetchall() if cursor.description else [])

    def add(self, kind: str, key: str, owner: str, thread_id: str | None, doc: dict[str, Any]) -> bool:
        count, _ = self._run(
            "INSERT INTO uncut_agent_records (kind, record_key, owner, thread_id, created_at, doc) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (kind, record_key) DO NOTHING",
            (kind, key, owner, thread_id, time.time(), json.dumps(doc)),
        )
        return count == 1

    def put(self, kind: str, key: str, owner: str, thread_id: str | None, doc: dict[str, Any]) -> None:
        self._run(
            "INSERT INTO uncut_agent_records (kind, record_key, owner, thread_id, created_at, doc) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (kind, record_key) DO UPDATE SET owner = excluded.owner, thread_id = excluded.thread_id, doc = excluded.doc",
            (kind, key, owner, thread_id, time.time(), json.dumps(doc)),
        )

    def get(self, kind: str, key: str) -> tuple[str, dict[str, Any]] | None:
        _, rows = self._run("SELECT owner, doc FROM uncut_agent_records WHERE kind = ? AND record_key = ?", (kind, key))
        return None if not rows else (rows[0][0], json.loads(rows[0][1]))

    def delete(self, kind: str, key: str) -> None:
        self._run("DELETE FROM uncut_agent_records WHERE kind = ? AND record_key = ?", (kind, key))

    def find(self, kind: str, owner: str, thread_id: str | None = None) -> list[dict[str, Any]]:
        if thread_id is None:
            _, rows = self._run("SELECT doc FROM uncut_agent_records WHERE kind = ? AND owner = ? ORDER BY created_at DESC", (kind, owner))
        else:
            _, rows = self._run(
                "SELECT doc FROM uncut_agent_records WHERE kind = ? AND owner = ? AND thread_id = ? ORDER BY created_at DESC",
                (kind, owner, thread_id),
            )
        return [json.loads(row[0]) for row in rows]

    def count(self, kind: str, owner: str) -> int:
        _, rows = self._run("SELECT COUNT(*) FROM uncut_agent_records WHERE kind = ? AND owner = ?", (kind, owner))
        return int(rows[0][0])
