"""Event logs shared through Redis Streams, so any worker on any host can resume a stream.

The producing worker keeps its log in memory (its own readers wait on it
as before) and writes every event through to a Redis stream: ``XADD`` with
the sequence number as the entry id (``<seq>-1``), in a Lua script that
also refuses a second terminal event, so "exactly one end or error" holds
across processes. Readers in other workers tail it with ``XREAD BLOCK``.
Logs expire ``ttl`` seconds after their terminal event (and, if a worker
dies mid-stream, a while after their last write).

Losing Redis costs no answer while the producer lives: it holds the whole
log in memory, so Redis is a copy it can rebuild. An append that cannot
reach Redis is retried with backoff for ``retry_seconds``; one that finds
the stream gone (a restart without its data) or shorter than the local log
(the last second an ``appendfsync everysec`` AOF or an async replica had
not kept) first re-seeds it: the missing events under their own ids, the
meta hash, the lease, in one script per batch, so a reader tailing it
sees the next ids in order, never a gap or a duplicate. A keeper does the
same for every stream this process holds (running and finished, and the
chat names pointing at them) when it sees Redis come back or a new server
(a restart, a Sentinel failover) answer. Readers elsewhere retry a failed
``XREAD`` for the same bound, and while Redis has just come back they wait
for re-seeds instead of calling a stream missing or its producer lost.
Only Redis away past the bound ends a stream with ``store_unavailable``.
``reseed=False`` restores failing at once (the tests' negative control).

redis-py's own retries are off, so a restarted (empty) Redis is noticed
rather than silently written into. An append names the sequence number it
expects to write, so a retry after a lost reply (Redis ran the script, the
answer never came back) finds its own event there instead of writing it
twice under two numbers.

A producer holds a lease on each stream it runs (a key that expires unless
renewed: every append renews it, and a keeper renews it through model
pauses). A reader in another worker that finds the lease gone and no
terminal event ends the stream with a retryable ``producer_lost`` error,
so a worker killed with ``kill -9``, by the OOM killer or with its host,
leaves no reader waiting for the stream's maximum duration.

A cancel in one worker reaches the worker producing the stream at once:
it ends the stream in Redis and publishes the stream id on
``<key_prefix>cancel``, which every worker's store listens to. The URL forms
(Sentinel among them) are ``uncut.redis_config``'s. Imports nothing from
Flask.

Every key and the channel start with ``key_prefix`` (``uncut:`` by
default): ``<prefix>stream:<id>`` (and ``:meta``, ``:lease``, ``:reader``),
``<prefix>name:<name>``, ``<prefix>cancel``, and the thread leases'
``<prefix>lease:<key>``. Apps that share one Redis and pass different
prefixes never see each other's streams, names, cancels or leases.

A Redis error becomes ``StoreUnavailable`` in one place, ``RedisStore._guarded``
(or is tolerated, where a guess is safe, in ``RedisStore._or``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from uncut.concurrency import spawn
from uncut.errors import LogClosedError
from uncut.eventlog import PRODUCER_LOST, STORE_UNAVAILABLE, Event, MemoryEventLog, MemoryStore, StoreUnavailable
from uncut.leases import RedisLeases
from uncut.redis_config import STORE_RETRY_SECONDS, connect, masked, parse_store_url, refuse_cluster

__all__ = ["RedisStore", "masked"]
T = TypeVar("T")

log = logging.getLogger(__name__)

DEFAULT_KEY_PREFIX = "uncut:"
LEASE_MS = 6000  # a producer not heard of for this long is taken for dead
_LEASE_RENEW_SECONDS = 1.5
# After Redis comes back (or a new server answers), how long readers wait for producers to re-seed before they
# call a stream missing or its producer lost: more than one keeper round, which re-seeds everything.
_SETTLE_SECONDS = 2 * _LEASE_RENEW_SECONDS + 0.5
_FIRST_BACKOFF_SECONDS = 0.05
_MAX_BACKOFF_SECONDS = 0.5
_RESEED_BATCH = 500  # events per re-seed script: a long log goes in several, each in order

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


# KEYS: stream, meta, lease. ARGV: start, owner, deadline (epoch ms), lease ms (0: none), ttl ms, then a kind and
# its data for each of the events numbered start, start + 1, ... Writes them if Redis holds exactly `start`
# events, and (while the stream runs) restores its meta hash and lease. Returns {status, held}: 0 written (held:
# the events Redis now holds), 1 Redis holds `held` events (send from there), -1 the stream ended in Redis.
_RESEED = """
if redis.call('HGET', KEYS[2], 'done') == '1' then return {-1, 0} end
local held = 0
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last == 1 then held = tonumber(string.match(last[1][1], '^(%d+)')) + 1 end
local start = tonumber(ARGV[1])
if held ~= start then return {1, held} end
local n = (#ARGV - 5) / 2
local done = false
for i = 0, n - 1 do
  local kind = ARGV[6 + 2 * i]
  redis.call('XADD', KEYS[1], (start + i) .. '-1', 'k', kind, 'd', ARGV[7 + 2 * i])
  if kind == 'end' or kind == 'error' then done = true end
end
redis.call('HSET', KEYS[2], 'seq', start + n, 'owner', ARGV[2], 'deadline', ARGV[3])
if done then
  redis.call('HSET', KEYS[2], 'done', '1')
  redis.call('DEL', KEYS[3])
elseif ARGV[4] ~= '0' then
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[4])
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return {0, start + n}
"""


class _Diverged(StoreUnavailable):
    """Redis holds events this worker never wrote, and no terminal one: nothing to re-seed, nothing to retry."""


# Delete a name only if it still names the given stream.
_FORGET = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


def _event(entry_id: bytes | str, fields: dict[Any, Any]) -> Event:
    entry = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    kind: Any = fields.get(b"k", fields.get("k"))  # a stream entry's fields: untyped values from Redis
    data: Any = fields.get(b"d", fields.get("d"))
    return Event(int(entry.split("-")[0]), kind.decode() if isinstance(kind, bytes) else kind, json.loads(data))


class RedisStore:
    """Shared event logs: local ones written through to Redis, remote ones read from it.

    ``url`` is any form ``uncut.redis_config`` parses (``redis+sentinel://``
    too). ``reseed`` (on by default) retries an unreachable Redis for
    ``retry_seconds`` and rebuilds what it lost from the local logs; off,
    every failure ends the stream at once with ``store_unavailable``.

    ``key_prefix`` (``"uncut:"`` by default) starts every key and the
    cancel channel, so several apps can share one Redis without sharing
    streams or names: give each its own. Changing it on a running
    deployment orphans the streams in flight (a resume finds them no more)
    and its chat names, so an app upgrading from a version that wrote other
    keys passes its old prefix. Versions before this option wrote fixed keys
    named after the service that ships beside the library; that service
    passes its old prefix, so an upgrade keeps every key (docs/configuration.md, the stream store).
    """

    shared = True

    def __init__(
        self,
        url: str,
        ttl_seconds: float = 300.0,
        running_ttl_seconds: float = 3600.0,
        max_events: int = 500_000,
        max_bytes: int = 256 * 1_048_576,
        *,
        reseed: bool = True,
        retry_seconds: float = STORE_RETRY_SECONDS,
        key_prefix: str = DEFAULT_KEY_PREFIX,
    ) -> None:
        try:
            self.target = parse_store_url(url)
        except ValueError as exc:
            raise StoreUnavailable(str(exc)) from None
        self.url = url
        self.key_prefix = key_prefix
        self.cancel_channel = f"{key_prefix}cancel"
        self.ttl_ms = int(ttl_seconds * 1000)
        self.running_ttl_ms = int(running_ttl_seconds * 1000)
        self.reseed = reseed
        self.retry_seconds = retry_seconds if reseed else 0.0
        self.client = connect(
            self.target,
            socket_timeout=_READ_SLICE_SECONDS + 4,
            socket_connect_timeout=2,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
        )
        self._append_script = self.client.register_script(_APPEND)
        self._reseed_script = self.client.register_script(_RESEED)
        self._forget_script = self.client.register_script(_FORGET)
        # One run per thread, for every worker on this Redis (Streams.stream_thread).
        self.leases = RedisLeases(self.client, prefix=f"{key_prefix}lease:")
        self._closed = threading.Event()
        self._keeper_started = False
        self._server_id: str | None = None  # the run_id of the Redis the keeper last talked to
        self._trouble_at = -1e9  # monotonic time Redis last failed us or a new server answered
        self.reseeds = 0  # events written back to Redis from local logs (for tests and logs)
        store = self

        class _Local(MemoryStore):
            def _new_log(self, stream_id: str, owner: str | None) -> MemoryEventLog:
                return MirroredLog(stream_id, store, owner)

            def held(self) -> tuple[list[MemoryEventLog], dict[str, str]]:
                """Every log still kept here, and the names pointing at one of them (what a re-seed restores)."""
                with self._lock:
                    return list(self._logs.values()), {n: sid for n, sid in self._names.items() if sid in self._logs}

        self._local = _Local(ttl_seconds, max_events, max_bytes)

    def keys(self, stream_id: str) -> tuple[str, str]:
        """The stream's Redis stream and its meta hash."""
        return f"{self.key_prefix}stream:{stream_id}", f"{self.key_prefix}stream:{stream_id}:meta"

    def lease_key(self, stream_id: str) -> str:
        """The producer's lease on a stream (gone: the producer is taken for dead)."""
        return f"{self.key_prefix}stream:{stream_id}:lease"

    def reader_key(self, stream_id: str) -> str:
        """Present while some reader has read the stream lately."""
        return f"{self.key_prefix}stream:{stream_id}:reader"

    def name_key(self, name: str) -> str:
        """A chat name (``Streams.stream(name=...)``) pointing at its latest stream."""
        return f"{self.key_prefix}name:{name}"

    def ping(self) -> None:
        """Raise StoreUnavailable naming the (masked) URL if Redis does not answer, or is a cluster."""
        try:
            with self._guarded(f"cannot reach Redis at {masked(self.url)}: ", troubled=False):
                self.client.ping()
                refuse_cluster(self.client, self.url)
        except ValueError as exc:
            raise StoreUnavailable(str(exc)) from None

    # -- retrying ---------------------------------------------------------------------------

    def _retrying(self, call: Callable[[], T]) -> T:
        """``call()``, retried with backoff while Redis is away, at most ``retry_seconds``; then StoreUnavailable."""
        give_up: float | None = None
        delay = _FIRST_BACKOFF_SECONDS
        while True:
            try:
                with self._guarded():
                    return call()
            except StoreUnavailable:
                now = time.monotonic()
                give_up = now + self.retry_seconds if give_up is None else give_up
                if now >= give_up:
                    raise
                time.sleep(min(delay, give_up - now))
                delay = min(2 * delay, _MAX_BACKOFF_SECONDS)

    @contextmanager
    def _guarded(self, what: str = "", *, troubled: bool = True) -> Iterator[None]:
        """The one place a Redis error becomes ``StoreUnavailable`` (its message after ``what``).

        The store notes the trouble (unless ``troubled=False``): readers then
        wait a while for re-seeds before they call a stream missing.
        """
        try:
            yield
        except redis.RedisError as exc:
            if troubled:
                self._troubled()
            raise StoreUnavailable(f"{what}{exc}") from None

    def _or(self, default: T, call: Callable[[], T]) -> T:
        """``call()``, or ``default`` if Redis fails (the trouble noted): where a safe guess beats an error."""
        try:
            with self._guarded():
                return call()
        except StoreUnavailable:
            return default

    def _troubled(self) -> float:
        now = time.monotonic()
        self._trouble_at = now
        return now

    def settling(self) -> bool:
        """True just after Redis came back or changed: producers may still be re-seeding what it lost."""
        if not self.reseed:
            return False
        if time.monotonic() - self._trouble_at < _SETTLE_SECONDS:
            return True
        # A process that saw no error (it was idle) asks Redis how long it has been up.
        return self._or(True, lambda: int(self.client.info("server").get("uptime_in_seconds", 1e9)) < _SETTLE_SECONDS)

    # -- the keeper ---------------------------------------------------------------------------

    def create(self, stream_id: str, owner: str | None = None) -> MemoryEventLog:
        if not self._keeper_started:
            self._keeper_started = True
            spawn(self._keep)
        return self._local.create(stream_id, owner)

    def _keep(self) -> None:
        """Renew the leases of the streams this process runs (through model pauses, no appends renew them);
        when Redis comes back or another server answers, re-seed everything this process holds."""
        away = False
        while not self._closed.wait(_LEASE_RENEW_SECONDS):
            try:
                with self._guarded():
                    away = self._keep_once(away)
            except StoreUnavailable:
                self._troubled()
                away = True  # the next round that reaches Redis re-seeds
            except Exception:  # noqa: BLE001 - the keeper must outlive one bad round
                log.exception("stream store keeper: a round failed")

    def _keep_once(self, was_away: bool) -> bool:
        running = self._local.running_ids()
        if self.reseed:
            server_id = str(self.client.info("server").get("run_id", ""))
            changed = server_id != self._server_id and self._server_id is not None
            self._server_id = server_id
            if changed or was_away:
                self._troubled()
                self.reseed_all()
                return False
        if not running:
            return False
        with self.client.pipeline(transaction=False) as pipe:
            for stream_id in running:
                pipe.set(self.lease_key(stream_id), 1, px=LEASE_MS, xx=True)
            renewed = pipe.execute()
        if self.reseed:
            for stream_id, ok in zip(running, renewed):
                if not ok:  # its lease is gone though it runs: Redis lost its state
                    local = self._local.open(stream_id)
                    if isinstance(local, MirroredLog):
                        self._reseed_held(local)
        return False

    def reseed_all(self) -> int:
        """Write back to Redis what it lacks of every log and name this process holds; returns the logs re-seeded."""
        logs, names = self._local.held()
        mirrored = [log for log in logs if isinstance(log, MirroredLog)]
        with self.client.pipeline(transaction=False) as pipe:
            for mlog in mirrored:
                pipe.xlen(self.keys(mlog.stream_id)[0])
                pipe.exists(self.lease_key(mlog.stream_id))
            found = pipe.execute()
        short = [mlog for k, mlog in enumerate(mirrored) if found[2 * k] < mlog.count() or (not mlog.finished and not found[2 * k + 1])]
        for mlog in short:
            self._reseed_held(mlog)
        if names:
            with self.client.pipeline(transaction=False) as pipe:
                for name, stream_id in names.items():
                    pipe.set(self.name_key(name), stream_id, px=self.running_ttl_ms, nx=True)  # a newer stream keeps it
                pipe.execute()
        if short:
            log.warning("stream store: re-seeded %d of %d streams (and %d names) into Redis", len(short), len(mirrored), len(names))
        return len(short)

    def _reseed_held(self, mlog: "MirroredLog") -> None:
        """Re-seed a log unless its producer is writing it (then that write re-seeds it)."""
        if not mlog._lock.acquire(blocking=False):
            return
        try:
            self.reseed_log(mlog)
        except _Diverged as exc:
            log.warning("stream %s: not re-seeded: %s", mlog.stream_id, exc)
        finally:
            mlog._lock.release()

    def reseed_log(self, mlog: "MirroredLog", upto: int | None = None) -> int:
        """Write the first ``upto`` events of ``mlog`` (all by default) that Redis lacks, in order, with the
        meta hash and the lease; returns how many events Redis then holds, or -1 if it ended there.

        Raises StoreUnavailable if Redis does not answer, ``_Diverged`` if it holds more than this log.
        """
        events = mlog.events()[:upto]
        stream_key, meta_key = self.keys(mlog.stream_id)
        finished = bool(events) and events[-1].terminal
        if finished and mlog.finished_at is not None:
            ttl = max(1000, self.ttl_ms - int((time.monotonic() - mlog.finished_at) * 1000))
        else:
            ttl = self.running_ttl_ms
        head = [mlog.owner or "", _epoch_ms(mlog.deadline), 0 if finished else LEASE_MS, ttl]
        start, written = 0, 0
        batch: list[Event] = []  # the first call sends none: Redis answers how many it holds
        for _ in range(len(events) // _RESEED_BATCH + 4):
            args: list[Any] = [start, *head]
            for event in batch:
                args += [event.kind, json.dumps(event.data, separators=(",", ":"))]
            with self._guarded():
                status, held = (int(x) for x in self._reseed_script(keys=[stream_key, meta_key, self.lease_key(mlog.stream_id)], args=args))
            if status == -1:
                return -1
            if held > len(events):
                raise _Diverged(f"stream {mlog.stream_id}: Redis holds {held} events, this worker {len(events)}")
            if status == 0:
                written += len(batch)
                if held == len(events):
                    self.reseeds += written
                    if written:
                        log.info("stream %s: re-seeded %d events into Redis", mlog.stream_id, written)
                    return held
            start = held
            batch = events[start : start + _RESEED_BATCH]
        raise StoreUnavailable(f"stream {mlog.stream_id}: re-seeding did not settle (Redis keeps changing)")

    # -- names, leases, cancels ------------------------------------------------------------------

    def name_stream(self, name: str, stream_id: str) -> None:
        """Point ``name`` at ``stream_id`` for every worker; it lives as long as a running stream may.

        Remembered here too, so a re-seed restores it.
        """
        self._local.name_stream(name, stream_id)
        self._retrying(lambda: self.client.set(self.name_key(name), stream_id, px=self.running_ttl_ms))

    def named(self, name: str) -> str | None:
        found = self._retrying(lambda: self.client.get(self.name_key(name)))
        if found is None and self.settling():
            found = self._wait_for(lambda: self.client.get(self.name_key(name)))
        return found.decode() if isinstance(found, bytes) else found

    def forget_name(self, name: str, stream_id: str) -> None:
        """Drop ``name`` if it still points at ``stream_id``, atomically (a newer stream keeps it)."""
        self._local.forget_name(name, stream_id)
        # On a failure the name lives to its TTL: a resume replays a finished stream, nothing is lost.
        self._or(None, lambda: self._forget_script(keys=[self.name_key(name)], args=[stream_id]))

    def producer_alive(self, stream_id: str) -> bool:
        return bool(self._retrying(lambda: self.client.exists(self.lease_key(stream_id))))

    def _wait_for(self, probe: Callable[[], Any]) -> Any:
        """Poll ``probe`` until it finds something, for at most the settling time (a re-seed is under way)."""
        give_up = time.monotonic() + _SETTLE_SECONDS
        while time.monotonic() < give_up:
            time.sleep(0.1)
            found = self._or(None, probe)
            if found:
                return found
        return None

    def open(self, stream_id: str) -> "MemoryEventLog | RemoteLog | None":
        local = self._local.open(stream_id)
        if local is not None:
            return local
        stream_key, meta_key = self.keys(stream_id)
        exists = self._retrying(lambda: self.client.exists(stream_key))
        if not exists and not (self.settling() and self._wait_for(lambda: self.client.exists(stream_key))):
            return None
        owner, deadline = self._retrying(lambda: self.client.hmget(meta_key, "owner", "deadline"))
        remaining = int(deadline) / 1000 - time.time() if deadline else None
        return RemoteLog(
            stream_id,
            self,
            (owner.decode() if isinstance(owner, bytes) else owner) if owner else None,
            None if remaining is None else time.monotonic() + remaining,
        )

    # -- appends ---------------------------------------------------------------------------------

    def append(
        self,
        stream_id: str,
        kind: str,
        data: dict[str, Any],
        *,
        expected: int = -1,
        owner: str | None = None,
        deadline: float | None = None,
    ) -> int:
        """Write one event; ``expected`` is its sequence number (-1: whatever comes next, from a non-producer).

        The producer's appends (``expected`` >= 0) renew its lease. Retried once on a lost reply.
        """
        stream_key, meta_key = self.keys(stream_id)
        args: list[str | int] = [
            kind,
            json.dumps(data, separators=(",", ":")),
            int(kind in ("end", "error")),
            int(expected == 0),
            self.running_ttl_ms,
            self.ttl_ms,
            expected,
            owner or "",
            _epoch_ms(deadline),
            LEASE_MS if expected >= 0 else 0,
        ]
        for attempt in range(2):
            with self._guarded():
                try:
                    return int(self._append_script(keys=[stream_key, meta_key, self.lease_key(stream_id)], args=args))
                except (redis.ConnectionError, redis.TimeoutError):
                    # Redis may have run the script and the reply been lost: the same expected number makes a
                    # second try find that event rather than write it again under the next number.
                    if attempt or expected < 0:
                        raise
        raise AssertionError("unreachable")

    def write(self, mlog: "MirroredLog", kind: str, data: dict[str, Any]) -> int:
        """The producer's append of its next event, through a Redis that restarts, fails over or loses data.

        Returns what ``append`` does: the sequence number, -1 (ended elsewhere), -2 (state gone) or -3
        (diverged), the last two only with re-seeding off. With it on, an unreachable Redis is retried for
        ``retry_seconds`` and a stream it lost (all or its tail) is re-seeded from ``mlog`` before the event.
        """
        expected = mlog.count()
        give_up: float | None = None
        delay = _FIRST_BACKOFF_SECONDS
        reseeded = 0
        bound = 0.0 if mlog.store_lost else self.retry_seconds  # its terminal event, after a give-up: one try
        while True:
            try:
                seq = self.append(mlog.stream_id, kind, data, expected=expected, owner=mlog.owner, deadline=mlog.deadline)
                if seq not in (-2, -3) or not self.reseed or reseeded >= 3:
                    return seq
                reseeded += 1
                self._troubled()
                self.reseed_log(mlog, upto=expected)  # -1 (it ended in Redis meanwhile): the append says so next
            except _Diverged:
                raise
            except StoreUnavailable:
                if not self.reseed:
                    raise
                now = time.monotonic()
                give_up = now + bound if give_up is None else give_up
                if now >= give_up:
                    mlog.store_lost = True
                    raise
                time.sleep(min(delay, give_up - now))
                delay = min(2 * delay, _MAX_BACKOFF_SECONDS)

    def announce_cancel(self, stream_id: str) -> None:
        """Tell every worker (the producing one among them) that the stream was cancelled."""
        self._retrying(lambda: self.client.publish(self.cancel_channel, stream_id))

    def watch_cancels(self, on_cancel: Callable[[str], None]) -> None:
        """Call ``on_cancel(stream_id)`` for every cancel any worker announces, until ``close()``."""
        spawn(self._listen, on_cancel)

    def _listen(self, on_cancel: Callable[[str], None]) -> None:
        while not self._closed.is_set():
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]  # unannotated in redis-py
            try:
                pubsub.subscribe(self.cancel_channel)
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
        entries = self._retrying(lambda: self.client.xrevrange(self.keys(stream_id)[0], count=1))
        # redis-py's entry type allows a None id and fields (XCLAIM's deleted entries); XREVRANGE gives neither
        return _event(*entries[0]) if entries else None  # type: ignore[arg-type]

    def touch_reader(self, stream_id: str, milliseconds: int = _READER_PRESENCE_MS) -> None:
        """A reader is here (or, with a longer time, is on its way): the run's grace does not run out meanwhile."""
        self.client.set(self.reader_key(stream_id), 1, px=max(1, milliseconds))

    def expect_reader(self, stream_id: str, seconds: float) -> None:
        """A draining worker told this stream's reader to reconnect elsewhere: count it present for ``seconds``.

        On its way it may meet other draining workers or a worker still
        booting; without this its run's grace could end first (measured in
        the deploy-chaos scenario: 8 of 40 answers cancelled, "nobody was
        reading", while their clients were reconnecting).
        """
        # The store is away: its readers will hear of it.
        self._or(None, lambda: self.touch_reader(stream_id, int(max(seconds, _READER_PRESENCE_MS / 1000) * 1000)))

    def remote_reader(self, stream_id: str) -> bool:
        """True while a reader in any process has read this stream in the last few seconds.

        Also True when Redis cannot say: while it is away, or just after it
        came back (a restart or failover), readers could not renew their
        presence, and a run abandoned then would be cut under a reader that
        was following it all along (the soak: 3 of about 1,260 answers
        cancelled in a Sentinel failover). The run's deadline still bounds it.
        """
        return self._or(True, lambda: bool(self.client.exists(self.reader_key(stream_id))) or self.settling())


def _epoch_ms(deadline: float | None) -> str:
    """A monotonic deadline as epoch milliseconds, the form every worker (on any host) reads back."""
    return "" if deadline is None else str(int((time.time() + deadline - time.monotonic()) * 1000))


class MirroredLog(MemoryEventLog):
    """A producer's log: memory for local readers, written through to Redis for everyone else."""

    def __init__(self, stream_id: str, store: RedisStore, owner: str | None = None) -> None:
        super().__init__(stream_id, owner)
        self.store = store
        self.store_lost = False  # a write gave up on Redis after the retry bound

    @staticmethod
    def _new_lock() -> Any:
        """Appends write to Redis under the lock, which switches greenlets: gevent's lock, not the C one.

        Re-entrant like the memory log's, for a finalizer that ends this log during the Redis write.
        """
        return threading.RLock()

    def events(self) -> list[Event]:
        """Every event so far (a copy), for a re-seed."""
        return list(self._events)

    def _append_locked(self, kind: str, data: dict[str, Any]) -> Event:
        if self.finished:
            raise LogClosedError(f"stream {self.stream_id} already ended")
        seq = self.store.write(self, kind, data)
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
        self._failing_since: float | None = None  # when reads started failing (Redis away)
        self._lost_since: float | None = None  # when the producer's lease was first found gone

    @property
    def finished(self) -> bool:
        if not self._terminal_seen:
            last = self.store.last(self.stream_id)
            self._terminal_seen = bool(last and last.terminal)
        return self._terminal_seen

    def count(self) -> int:
        return int(self.store._retrying(lambda: self.store.client.xlen(self.store.keys(self.stream_id)[0])))

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
        delay = _FIRST_BACKOFF_SECONDS
        while self._wakeups == wakeups:
            remaining = _READ_SLICE_SECONDS if deadline is None else min(_READ_SLICE_SECONDS, deadline - time.monotonic())
            if remaining <= 0:
                return []
            try:
                with self.store._guarded():
                    self.store.touch_reader(self.stream_id)
                    found = self.store.client.xread(
                        {stream_key: f"{seq}-1" if seq >= 0 else "0-0"}, count=1000, block=max(1, int(remaining * 1000))
                    )
            except StoreUnavailable:
                # Redis is away (restarting, failing over): retry, heartbeats still going out, up to the bound.
                now = time.monotonic()
                self._failing_since = now if self._failing_since is None else self._failing_since
                if now - self._failing_since >= self.store.retry_seconds:
                    return [Event(None, "error", STORE_UNAVAILABLE)]
                time.sleep(max(0.0, min(delay, remaining)))
                delay = min(2 * delay, _MAX_BACKOFF_SECONDS)
                continue
            self._failing_since = None
            if found:
                # redis-py types XREAD's reply as RESP2's list or RESP3's dict; this client speaks RESP2 (the list)
                events = [_event(entry_id, fields) for entry_id, fields in found[0][1]]  # type: ignore[misc, arg-type, index]
                self._terminal_seen = self._terminal_seen or events[-1].terminal
                self._lost_since = None
                return events
            lost = self._end_if_producer_lost()
            if lost is not None:
                return lost
        return []

    def _end_if_producer_lost(self) -> list[Event] | None:
        """No events for a while: if nobody holds the lease and the stream never ended, end it for every reader.

        Just after Redis came back, a lease (or the whole stream) may be missing only until its producer
        re-seeds it: the reader waits that long before it calls the producer lost.
        """
        try:
            if self.store.producer_alive(self.stream_id) or self.finished:
                self._lost_since = None
                return None
            now = time.monotonic()
            if self._lost_since is None and self.store.settling():
                self._lost_since = now
            if self._lost_since is not None and now - self._lost_since < _SETTLE_SECONDS:
                return None  # a re-seed may be under way
            if self.store.append(self.stream_id, "error", PRODUCER_LOST) == -2:
                return [Event(None, "error", STORE_UNAVAILABLE)]  # its state is gone and nobody restored it
        except StoreUnavailable:
            return [Event(None, "error", STORE_UNAVAILABLE)]
        log.warning("stream %s: its producer is gone (no lease); ended it with producer_lost", self.stream_id)
        return None  # the next read returns the terminal event, with its sequence number
