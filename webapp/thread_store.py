"""Where the service keeps threads: LangGraph's checkpointer, and an index of whose each thread is.

``WEBAPP_THREAD_STORE`` names one database for both:

- ``sqlite:///path/threads.db`` (the default, ``var/threads.db``): one host,
  any number of workers, no server to run. WAL mode, so readers never wait
  for a writer; a write waits at most ``busy_timeout`` for another
  worker's. sqlite3 is a C call: under gevent it holds the worker's loop
  for its duration (measured per step in the closing note of issue 24);
- ``postgresql://...``: ``PostgresSaver`` over a psycopg pool per worker,
  for threads that survive any host. psycopg 3 waits cooperatively under
  gevent (3.1.14 and later), so a slow query holds only its own greenlet.

The index (``uncut_threads``) says who owns a thread and when it was last
used: a thread is its key's (every other key gets 404), expires
``ttl`` seconds after its last use, and a key keeps at most ``max_per_owner``.
Expired threads are swept, a few at a time, when a thread is created.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from webapp.errors import ApiError

DEFAULT_SQLITE_PATH = "var/threads.db"
SWEEP_BATCH = 20  # expired threads deleted per create: the sweep never holds a request long
SQLITE_BUSY_MS = 2000
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS uncut_threads (thread_id TEXT PRIMARY KEY, owner TEXT NOT NULL,"
    " created_at DOUBLE PRECISION NOT NULL, used_at DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX IF NOT EXISTS uncut_threads_owner ON uncut_threads (owner, used_at)",
    "CREATE INDEX IF NOT EXISTS uncut_threads_used ON uncut_threads (used_at)",
    "CREATE TABLE IF NOT EXISTS uncut_leases (lease_key TEXT PRIMARY KEY, token TEXT NOT NULL, expires_at DOUBLE PRECISION NOT NULL)",
)


def new_thread_id() -> str:
    return "t_" + secrets.token_hex(16)  # 128 random bits: with keys off the id is the only thing that names the thread


@dataclass
class ThreadStore:
    """A checkpointer for the agent, the index of threads by owner, and the one-run-per-thread leases."""

    checkpointer: Any
    index: "ThreadIndex"
    leases: "SqlLeases"
    close: Callable[[], None]
    connection: Callable[[], Any] | None = None  # the database, for the Agent Server's records (uncut.agent_server.SqlRecords)
    placeholder: str = "?"


class SqlLeases:
    """uncut.leases' ``LeaseStore`` in the thread store's database: every worker that shares the threads shares their leases.

    An expired lease is taken over in the same statement that takes a free
    one (an upsert whose update applies only past ``expires_at``), so two
    workers can never both hold it. Expiry is wall-clock time: hosts on one
    PostgreSQL must keep their clocks within a fraction of a lease (NTP).
    """

    shared = True

    def __init__(self, connection: Callable[[], Any], placeholder: str, clock: Callable[[], float] = time.time) -> None:
        self._connection = connection
        self._p = placeholder
        self._clock = clock

    def _run(self, sql: str, args: tuple[Any, ...]) -> Any:
        with self._connection() as db:
            return db.execute(sql.replace("?", self._p), args)

    def take(self, key: str, token: str, ttl: float) -> bool:
        now = self._clock()
        cursor = self._run(
            "INSERT INTO uncut_leases (lease_key, token, expires_at) VALUES (?, ?, ?) ON CONFLICT (lease_key) DO UPDATE"
            " SET token = excluded.token, expires_at = excluded.expires_at WHERE uncut_leases.expires_at <= ?",
            (key, token, now + ttl, now),
        )
        return cursor.rowcount == 1

    def renew(self, key: str, token: str, ttl: float) -> bool:
        now = self._clock()
        cursor = self._run(
            "UPDATE uncut_leases SET expires_at = ? WHERE lease_key = ? AND token = ? AND expires_at > ?", (now + ttl, key, token, now)
        )
        return cursor.rowcount == 1

    def give_back(self, key: str, token: str) -> None:
        self._run("DELETE FROM uncut_leases WHERE lease_key = ? AND token = ?", (key, token))

    def holder(self, key: str) -> str | None:
        with self._connection() as db:
            row = db.execute(
                "SELECT token FROM uncut_leases WHERE lease_key = ? AND expires_at > ?".replace("?", self._p), (key, self._clock())
            ).fetchone()
        return None if row is None else row[0]


class ThreadIndex:
    """Who owns which thread, and when it was last used; SQL shared by SQLite (``?``) and PostgreSQL (``%s``)."""

    def __init__(
        self,
        connection: Callable[[], Any],
        placeholder: str,
        ttl_seconds: float,
        max_per_owner: int,
        forget: Callable[[str], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._connection = connection  # a context manager giving a connection that commits on exit
        self._p = placeholder
        self.ttl_seconds = ttl_seconds
        self.max_per_owner = max_per_owner
        self._forget = forget  # deletes the thread's checkpoints
        self._clock = clock
        with self._connection() as db:
            for statement in _SCHEMA:
                db.execute(statement)

    def _sql(self, text: str) -> str:
        return text.replace("?", self._p)

    def create(self, owner: str, thread_id: str | None = None) -> str:
        """A new thread for ``owner`` (``thread_id``, else a random id); 429 when it already keeps ``max_per_owner``.

        A ``thread_id`` that exists already is left as it is: ``claim`` checks whose it is.
        """
        self.sweep()
        now = self._clock()
        with self._connection() as db:
            (count,) = db.execute(
                self._sql("SELECT COUNT(*) FROM uncut_threads WHERE owner = ? AND used_at > ?"), (owner, now - self.ttl_seconds)
            ).fetchone()
            if self.max_per_owner and count >= self.max_per_owner:
                raise ApiError(
                    429,
                    "too_many_threads",
                    f"This key keeps {count} threads, the most allowed (WEBAPP_MAX_THREADS_PER_KEY): delete one first.",
                )
            thread_id = thread_id or new_thread_id()
            db.execute(
                self._sql(
                    "INSERT INTO uncut_threads (thread_id, owner, created_at, used_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (thread_id) DO NOTHING"
                ),
                (thread_id, owner, now, now),
            )
        return thread_id

    def claim(self, owner: str, thread_id: str) -> None:
        """``thread_id`` as ``owner``'s: its use noted when it is theirs, made when it is new or expired; 429 past the share.

        For ids the caller derives (an AI SDK chat's thread, uncut.ui_threads),
        where no request creates the thread first. Another owner's gets 404.
        """
        with self._connection() as db:
            row = db.execute(self._sql("SELECT owner, used_at FROM uncut_threads WHERE thread_id = ?"), (thread_id,)).fetchone()
        if row is not None and row[1] <= self._clock() - self.ttl_seconds:
            self.delete(thread_id)  # expired: its checkpoints go, and the chat starts over
        elif row is not None:
            if row[0] != owner:
                raise ApiError(404, "thread_not_found", "No such chat here for this key.")
            self.touch(thread_id)
            return
        self.create(owner, thread_id)
        if not self.owns(owner, thread_id):  # another request made it first, for someone else
            raise ApiError(404, "thread_not_found", "No such chat here for this key.")

    def owns(self, owner: str, thread_id: str) -> bool:
        """True when ``thread_id`` is ``owner``'s and has not expired."""
        with self._connection() as db:
            row = db.execute(self._sql("SELECT owner, used_at FROM uncut_threads WHERE thread_id = ?"), (thread_id,)).fetchone()
        return row is not None and row[0] == owner and row[1] > self._clock() - self.ttl_seconds

    def touch(self, thread_id: str) -> None:
        with self._connection() as db:
            db.execute(self._sql("UPDATE uncut_threads SET used_at = ? WHERE thread_id = ?"), (self._clock(), thread_id))

    def delete(self, thread_id: str) -> None:
        """The thread and its checkpoints."""
        self._forget(thread_id)
        with self._connection() as db:
            db.execute(self._sql("DELETE FROM uncut_threads WHERE thread_id = ?"), (thread_id,))

    def sweep(self, limit: int = SWEEP_BATCH) -> int:
        """Delete up to ``limit`` expired threads; returns how many."""
        with self._connection() as db:
            rows = db.execute(
                self._sql("SELECT thread_id FROM uncut_threads WHERE used_at <= ? LIMIT ?"), (self._clock() - self.ttl_seconds, limit)
            ).fetchall()
        for (thread_id,) in rows:
            self.delete(thread_id)
        return len(rows)


def open_thread_store(url: str, ttl_seconds: float, max_per_owner: int, pool_size: int) -> ThreadStore:
    """The store ``url`` names (``sqlite:///path`` or ``postgresql://...``), its tables created."""
    if url.startswith("sqlite:///"):
        return _sqlite(url[len("sqlite:///") :] or DEFAULT_SQLITE_PATH, ttl_seconds, max_per_owner)
    if url.startswith(("postgresql://", "postgres://")):
        return _postgres(url, ttl_seconds, max_per_owner, pool_size)
    raise ValueError("must be sqlite:///<path> or postgresql://...")


def _sqlite(path: str, ttl_seconds: float, max_per_owner: int) -> ThreadStore:
    from langgraph.checkpoint.sqlite import SqliteSaver

    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # One connection per worker, shared by its greenlets: SqliteSaver serialises its own use with a lock.
    conn = sqlite3.connect(path, check_same_thread=False, timeout=SQLITE_BUSY_MS / 1000, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    saver = SqliteSaver(conn)
    saver.setup()

    @contextmanager
    def connection() -> Iterator[Any]:
        with saver.lock:  # the saver's lock: one statement at a time on the shared connection
            yield conn

    index = ThreadIndex(connection, "?", ttl_seconds, max_per_owner, saver.delete_thread)
    return ThreadStore(saver, index, SqlLeases(connection, "?"), conn.close, connection, "?")


def _postgres(url: str, ttl_seconds: float, max_per_owner: int, pool_size: int) -> ThreadStore:
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import ConnectionPool

    # PostgresSaver wants autocommit and dict rows; prepare_threshold=0 keeps it working behind pgbouncer.
    pool = ConnectionPool(
        url,
        min_size=1,
        max_size=pool_size,
        open=True,
        timeout=10,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
    )
    saver = PostgresSaver(pool)  # type: ignore[arg-type]
    saver.setup()
    plain = ConnectionPool(url, min_size=1, max_size=max(1, pool_size // 4), open=True, timeout=10, kwargs={"autocommit": True})

    @contextmanager
    def connection() -> Iterator[Any]:
        with plain.connection() as conn:
            yield conn

    index = ThreadIndex(connection, "%s", ttl_seconds, max_per_owner, saver.delete_thread)

    def close() -> None:
        pool.close()
        plain.close()

    return ThreadStore(saver, index, SqlLeases(connection, "%s"), close, connection, "%s")


class Threads:
    """The worker's thread store and thread agent, opened at first use.

    Not at start-up: gunicorn forks workers from a master that must not
    hold a database connection, and an app that never serves a thread never
    creates the file.
    """

    def __init__(self, open_store: Callable[[], ThreadStore], build_agent: Callable[[Any], Any]) -> None:
        self._open_store = open_store
        self._build_agent = build_agent
        self._store: ThreadStore | None = None
        self._agent: Any = None
        self._agent_server: Any = None
        self._lock = threading.Lock()

    def _opened(self) -> ThreadStore:
        with self._lock:
            if self._store is None:
                store = self._open_store()
                self._agent = self._build_agent(store.checkpointer)
                self._store = store
            return self._store

    @property
    def index(self) -> ThreadIndex:
        return self._opened().index

    @property
    def agent(self) -> Any:
        self._opened()
        return self._agent

    @property
    def leases(self) -> SqlLeases:
        return self._opened().leases

    def agent_server(self, streams: Any) -> Any:
        """The Agent Server API on the thread agent (graph ``agent``), its records in the thread store's database."""
        from uncut.agent_server import AgentServer, SqlRecords

        store = self._opened()
        with self._lock:
            if self._agent_server is None:
                assert store.connection is not None
                records = SqlRecords(store.connection, store.placeholder)
                self._agent_server = AgentServer({"agent": self._agent}, streams, records=records)
            return self._agent_server


class ThreadLeases:
    """The thread store's leases, for ``Streaming(leases=...)`` before the store is opened (it opens at first use)."""

    shared = True

    def __init__(self, threads: Threads) -> None:
        self._threads = threads

    def take(self, key: str, token: str, ttl: float) -> bool:
        return self._threads.leases.take(key, token, ttl)

    def renew(self, key: str, token: str, ttl: float) -> bool:
        return self._threads.leases.renew(key, token, ttl)

    def give_back(self, key: str, token: str) -> None:
        self._threads.leases.give_back(key, token)

    def holder(self, key: str) -> str | None:
        return self._threads.leases.holder(key)
