"""Event logs shared through Redis Streams, so any worker on any host can resume a stream.

The producing worker keeps its log in memory (its own readers wait on it
as before) and writes every event through to a Redis stream: ``XADD`` with
the sequence number as the entry id (``<seq>-1``), in a Lua script that
also refuses a second terminal event, so "exactly one end or error" holds
across processes. Readers in other workers tail it with ``XREAD BLOCK``.
Logs expire ``ttl`` seconds after their terminal event (and, if a worker
dies mid-stream, a while after their last write).

Losing Redis is never a hang: a failed write ends the stream with a
``store_unavailable`` error event, a failed read gives the reader the same
error. redis-py's own retries are off, so a restarted (empty) Redis is
noticed rather than silently written into. An append names the sequence
number it expects to write, so the one retry after a lost reply (Redis ran
the script, the answer never came back) finds its own event there instead
of writing it twice under two numbers.

A producer holds a lease on each stream it runs (a key that expires unless
renewed: every append renews it, and a keeper renews it through model
pauses). A reader in another worker that finds the lease gone and no
terminal event ends the stream with a retryable ``producer_lost`` error,
so a worker killed with ``kill -9``, by the OOM killer or with its host,
leaves no reader waiting for ``WEBAPP_MAX_STREAM_SECONDS``.

A cancel in one worker reaches the worker producing the stream at once:
it ends the stream in Redis and publishes the stream id on
``webapp:cancel``, which every worker's store listens to. Imports nothing
from Flask.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from uncut.concurrency import spawn
from uncut.eventlog import PRODUCER_LOST, STORE_UNAVAILABLE, Event, LogClosedError, MemoryEventLog, MemoryStore, StoreUnavailable

log = logging.getLogger(__name__)

CANCEL_CHANNEL = "webapp:cancel"
LEASE_MS = 6000  # a producer not heard of for this long is taken for dead
_LEASE_RENEW_SECONDS = 1.5

# KEYS: stream, meta, lease. ARGV: kind, data, terminal (0/1), first (0/1), running ttl ms, finished ttl ms,
# expected sequence number (-1: whatever is next, for a cancel from another worker), owner, deadline (epoch ms),
# lease ms (0: this writer is not the producer).
# Returns the event's sequence number; -1 if the stream already ended; -2 if its state is gone; -3 if
# Redis holds another event where this one was expected (the logs diverged).
_APPEND = """
local expected = tonumber(ARGV[7])
if ARGV[4] == '0' and redis.call('EXISTS', KEYS[2]) == 0 then return -2 end
local seq = tonumber(redis.call('HGET', KEYS[2], 'seq') or '0')
if expected >= 0 and seq > expected then
  local entry = redis.call('XRANGE', KEYS[1], expected .. '-1', expected .. '-1')
  if #entry == 1 and entry[1][2][2] == ARGV[1] and entry[1][2][4] == ARGV[2] then return expected end
  if redis.call('HGET', KEYS[2], 'done') == '1' then return -1 end
  return -3
end
if redis.call('HGET', KEYS[2], 'done') == '1' then return -1 end
if expected >= 0 and seq < expected then return -3 end
redis.call('HSET', KEYS[2], 'seq', seq + 1)
redis.call('XADD', KEYS[1], seq .. '-1', 'k', ARGV[1], 'd', ARGV[2])
if ARGV[4] == '1' then redis.call('HSET', KEYS[2], 'owner', ARGV[8], 'deadline', ARGV[9]) end
local ttl = ARGV[5]
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[2], 'done', '1')
  redis.call('DEL', KEYS[3])
  ttl = ARGV[6]
elseif ARGV[10] ~= '0' then
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[10])
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return seq
"""

_READ_SLICE_SECONDS = 1.0  # longest single XREAD BLOCK, so wake-ups are seen promptly
_READER_PRESENCE_MS = 3000


# Delete a name only if it still names the given stream.
_FORGET = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


def masked(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _event(entry_id: bytes | str, fields: dict[Any, Any]) -> Event:
    entry = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    kind = fields.get(b"k", fields.get("k"))
    data = fields.get(b"d", fields.get("d"))
    return Event(int(entry.split("-")[0]), kind.decode() if isinstance(kind, bytes) else kind, json.loads(data))


class RedisStore:
    """Shared event logs: local ones written through to Redis, remote ones read from it."""

    shared = True

    def __init__(
        self, url: str, ttl_seconds: float = 300.0, running_ttl_seconds: float = 3600.0, max_events: int = 500_000,
        max_bytes: int = 256 * 1_048_576,
    ) -> None:
        self.url = url
        self.ttl_ms = int(ttl_seconds * 1000)
        self.running_ttl_ms = int(running_ttl_seconds * 1000)
        self.client = redis.Redis.from_url(
            url, socket_timeout=_READ_SLICE_SECONDS + 4, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0), retry_on_timeout=False,
        )
        self._append_script = self.client.register_script(_APPEND)
        self._forget_script = self.client.register_script(_FORGET)
        self._closed = threading.Event()
        self._keeper_started = False
        store = self

        class _Local(MemoryStore):
            def _new_log(self, stream_id: str, owner: str | None) -> MemoryEventLog:
                return MirroredLog(stream_id, store, owner)

        self._local = _Local(ttl_seconds, max_events, max_bytes)

    @staticmethod
    def keys(stream_id: str) -> tuple[str, str]:
        return f"webapp:stream:{stream_id}", f"webapp:stream:{stream_id}:meta"

    @staticmethod
    def lease_key(stream_id: str) -> str:
        return f"webapp:stream:{stream_id}:lease"

    def ping(self) -> None:
        """Raise StoreUnavailable naming the (masked) URL if Redis does not answer."""
        try:
            self.client.ping()
        except redis.RedisError as exc:
            raise StoreUnavailable(f"cannot reach Redis at {masked(self.url)}: {exc}") from None

    def create(self, stream_id: str, owner: str | None = None) -> MemoryEventLog:
        if not self._keeper_started:
            self._keeper_started = True
            spawn(self._renew_leases)
        return self._local.create(stream_id, owner)

    def _renew_leases(self) -> None:
        """Through model pauses (no appends), renew the lease of every stream this process is producing."""
        while not self._closed.wait(_LEASE_RENEW_SECONDS):
            running = self._local.running_ids()
            if not running:
                continue
            try:
                with self.client.pipeline(transaction=False) as pipe:
                    for stream_id in running:
                        pipe.set(self.lease_key(stream_id), 1, px=LEASE_MS, xx=True)
                    pipe.execute()
            except redis.RedisError:
                pass  # Redis is away: the next append will say so

    def name_stream(self, name: str, stream_id: str) -> None:
        """Point ``name`` at ``stream_id`` for every worker; it lives as long as a running stream may."""
        try:
            self.client.set(f"webapp:name:{name}", stream_id, px=self.running_ttl_ms)
        except redis.RedisError as exc:
            raise StoreUnavailable(str(exc)) from None

    def named(self, name: str) -> str | None:
        try:
            found = self.client.get(f"webapp:name:{name}")
        except redis.RedisError as exc:
            raise StoreUnavailable(str(exc)) from None
        return found.decode() if isinstance(found, bytes) else found

    def forget_name(self, name: str, stream_id: str) -> None:
        """Drop ``name`` if it still points at ``stream_id``, atomically (a newer stream keeps it)."""
        try:
            self._forget_script(keys=[f"webapp:name:{name}"], args=[stream_id])
        except redis.RedisError:
            pass  # the name then lives to its TTL: a resume replays a finished stream, nothing is lost

    def producer_alive(self, stream_id: str) -> bool:
        try:
            return bool(self.client.exists(self.lease_key(stream_id)))
        except redis.RedisError as exc:
            raise StoreUnavailable(str(exc)) from None

    def open(self, stream_id: str) -> "MemoryEventLog | RemoteLog | None":
        local = self._local.open(stream_id)
        if local is not None:
            return local
        stream_key, meta_key = self.keys(stream_id)
        try:
            if not self.client.exists(stream_key):
                return None
            owner, deadline = self.client.hmget(meta_key, "owner", "deadline")
        except redis.RedisError as exc:
            raise StoreUnavailable(str(exc)) from None
        remaining = int(deadline) / 1000 - time.time() if deadline else None
        return RemoteLog(
            stream_id, self, owner.decode() if owner else None, None if remaining is None else time.monotonic() + remaining
        )

    def append(
        self, stream_id: str, kind: str, data: dict[str, Any], *, expected: int = -1, owner: str | None = None,
        deadline: float | None = None,
    ) -> int:
        """Write one event; ``expected`` is its sequence number (-1: whatever comes next, from a non-producer).

        The producer's appends (``expected`` >= 0) renew its lease. Retried once on a lost reply.
        """
        stream_key, meta_key = self.keys(stream_id)
        deadline_ms = "" if deadline is None else str(int((time.time() + deadline - time.monotonic()) * 1000))
        args = [kind, json.dumps(data, separators=(",", ":")), int(kind in ("end", "error")), int(expected == 0),
                self.running_ttl_ms, self.ttl_ms, expected, owner or "", deadline_ms, LEASE_MS if expected >= 0 else 0]
        for attempt in range(2):
            try:
                return int(self._append_script(keys=[stream_key, meta_key, self.lease_key(stream_id)], args=args))
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                # Redis may have run the script and the reply been lost: the same expected number makes a
                # second try find that event rather than write it again under the next number.
                if attempt or expected < 0:
                    raise StoreUnavailable(str(exc)) from None
            except redis.RedisError as exc:
                raise StoreUnavailable(str(exc)) from None
        raise AssertionError("unreachable")

    def announce_cancel(self, stream_id: str) -> None:
        """Tell every worker (the producing one among them) that the stream was cancelled."""
        try:
            self.client.publish(CANCEL_CHANNEL, stream_id)
        except redis.RedisError as exc:
            raise StoreUnavailable(str(exc)) from None

    def watch_cancels(self, on_cancel: Callable[[str], None]) -> None:
        """Call ``on_cancel(stream_id)`` for every cancel any worker announces, until ``close()``."""
        spawn(self._listen, on_cancel)

    def _listen(self, on_cancel: Callable[[str], None]) -> None:
        while not self._closed.is_set():
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(CANCEL_CHANNEL)
                while not self._closed.is_set():
                    message = pubsub.get_message(timeout=_READ_SLICE_SECONDS)
                    if message is not None and message.get("type") == "message":
                        data = message["data"]
                        on_cancel(data.decode() if isinstance(data, bytes) else str(data))
            except redis.RedisError:
                self._closed.wait(_READ_SLICE_SECONDS)  # Redis is restarting: listen again shortly
            except Exception:  # noqa: BLE001 - the listener must outlive a failing callback
                log.exception("cancel listener: a callback failed")
            finally:
                try:
                    pubsub.close()
                except redis.RedisError:
                    pass

    def close(self) -> None:
        self._closed.set()

    def last(self, stream_id: str) -> Event | None:
        try:
            entries = self.client.xrevrange(self.keys(stream_id)[0], count=1)
        except redis.RedisError as exc:
            raise StoreUnavailable(str(exc)) from None
        return _event(*entries[0]) if entries else None

    def touch_reader(self, stream_id: str, milliseconds: int = _READER_PRESENCE_MS) -> None:
        """A reader is here (or, with a longer time, is on its way): the run's grace does not run out meanwhile."""
        self.client.set(f"webapp:stream:{stream_id}:reader", 1, px=max(1, milliseconds))

    def expect_reader(self, stream_id: str, seconds: float) -> None:
        """A draining worker told this stream's reader to reconnect elsewhere: count it present for ``seconds``.

        On its way it may meet other draining workers or a worker still
        booting; without this its run's grace could end first (measured in
        the deploy-chaos scenario: 8 of 40 answers cancelled, "nobody was
        reading", while their clients were reconnecting).
        """
        try:
            self.touch_reader(stream_id, int(max(seconds, _READER_PRESENCE_MS / 1000) * 1000))
        except redis.RedisError:
            pass  # the store is away: its readers will hear of it

    def remote_reader(self, stream_id: str) -> bool:
        """True while a reader in any process has read this stream in the last few seconds."""
        try:
            return bool(self.client.exists(f"webapp:stream:{stream_id}:reader"))
        except redis.RedisError:
            return False


class MirroredLog(MemoryEventLog):
    """A producer's log: memory for local readers, written through to Redis for everyone else."""

    def __init__(self, stream_id: str, store: RedisStore, owner: str | None = None) -> None:
        super().__init__(stream_id, owner)
        self.store = store

    @staticmethod
    def _new_lock() -> Any:
        """Appends write to Redis under the lock, which switches greenlets: gevent's lock, not the C one.

        Re-entrant like the memory log's, for a finalizer that ends this log during the Redis write.
        """
        return threading.RLock()

    def _append_locked(self, kind: str, data: dict[str, Any]) -> Event:
        if self.finished:
            raise LogClosedError(f"stream {self.stream_id} already ended")
        seq = self.store.append(self.stream_id, kind, data, expected=self.count(), owner=self.owner, deadline=self.deadline)
        if seq == -2:
            raise StoreUnavailable(f"stream {self.stream_id} is gone from Redis (restarted or expired)")
        if seq == -3:
            raise StoreUnavailable(f"stream {self.stream_id} in Redis no longer matches this worker's copy")
        if seq == -1:  # ended elsewhere (a DELETE in another worker): take its terminal event
            remote = self.store.last(self.stream_id)
            if remote is not None and remote.terminal:
                super()._append_locked(remote.kind, remote.data)
            raise LogClosedError(f"stream {self.stream_id} already ended")
        return super()._append_locked(kind, data)

    def expect_reader(self, seconds: float) -> None:
        self.store.expect_reader(self.stream_id, seconds)

    def finish(self, kind: str, data: dict[str, Any]) -> bool:
        with self._lock:
            if self.finished:
                return False
            try:
                self._append_locked(kind, data)
            except StoreUnavailable:
                MemoryEventLog._append_locked(self, kind, data)  # local readers still get their terminal event
            except LogClosedError:
                return False
            return True


class RemoteLog:
    """Another process's stream, read from Redis (and ended there, for a cancel)."""

    def __init__(self, stream_id: str, store: RedisStore, owner: str | None = None, deadline: float | None = None) -> None:
        self.stream_id = stream_id
        self.store = store
        self.owner = owner
        self.deadline = deadline  # the run's, carried over from the producing worker
        self._wakeups = 0
        self._lock = threading.Lock()
        self._terminal_seen = False

    @property
    def finished(self) -> bool:
        if not self._terminal_seen:
            last = self.store.last(self.stream_id)
            self._terminal_seen = bool(last and last.terminal)
        return self._terminal_seen

    def count(self) -> int:
        try:
            return int(self.store.client.xlen(self.store.keys(self.stream_id)[0]))
        except redis.RedisError as exc:
            raise StoreUnavailable(str(exc)) from None

    def last(self) -> Event | None:
        return self.store.last(self.stream_id)

    def append(self, kind: str, data: dict[str, Any]) -> Event:
        raise LogClosedError("only the producing worker appends to a stream")

    def finish(self, kind: str, data: dict[str, Any]) -> bool:
        return self.store.append(self.stream_id, kind, data) >= 0

    def wake(self) -> None:
        with self._lock:
            self._wakeups += 1

    def expect_reader(self, seconds: float) -> None:
        self.store.expect_reader(self.stream_id, seconds)

    def read_after(self, seq: int, timeout: float | None) -> list[Event]:
        deadline = None if timeout is None else time.monotonic() + timeout
        wakeups = self._wakeups
        stream_key = self.store.keys(self.stream_id)[0]
        while self._wakeups == wakeups:
            remaining = _READ_SLICE_SECONDS if deadline is None else min(_READ_SLICE_SECONDS, deadline - time.monotonic())
            if remaining <= 0:
                return []
            try:
                self.store.touch_reader(self.stream_id)
                found = self.store.client.xread({stream_key: f"{seq}-1" if seq >= 0 else "0-0"}, count=1000, block=max(1, int(remaining * 1000)))
            except redis.RedisError:
                return [Event(None, "error", STORE_UNAVAILABLE)]
            if found:
                events = [_event(entry_id, fields) for entry_id, fields in found[0][1]]
                self._terminal_seen = self._terminal_seen or events[-1].terminal
                return events
            lost = self._end_if_producer_lost()
            if lost is not None:
                return lost
        return []

    def _end_if_producer_lost(self) -> list[Event] | None:
        """No events for a while: if nobody holds the lease and the stream never ended, end it for every reader."""
        try:
            if self.store.producer_alive(self.stream_id) or self.finished:
                return None
            if self.store.append(self.stream_id, "error", PRODUCER_LOST) == -2:
                return [Event(None, "error", STORE_UNAVAILABLE)]  # its state is gone (Redis restarted)
        except StoreUnavailable:
            return [Event(None, "error", STORE_UNAVAILABLE)]
        log.warning("stream %s: its producer is gone (no lease); ended it with producer_lost", self.stream_id)
        return None  # the next read returns the terminal event, with its sequence number
