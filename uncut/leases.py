"""Internal: one run per thread: a lease that a run holds while it runs, and that expires if its worker dies.

A thread's runs must not overlap: two runs resuming the same interrupt would
each run the approved tool, and two new messages would interleave their
checkpoints. So a run takes the thread's lease before it starts and gives
it back when it ends. The holder renews it every third of its time to
live; a worker killed with ``kill -9`` renews nothing, and the thread is
free again within ``ttl`` seconds.

``MemoryLeases`` serves one process. ``RedisLeases`` serves every worker and
host on one Redis (``SET NX PX`` to take, a compare-and-set script to renew
or give back, so nobody frees a lease that has passed to someone else).
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Callable, Protocol

from uncut.concurrency import Task, short_lock, signal_factory, spawn

LEASE_TTL_SECONDS = 10.0  # how long a dead worker's thread stays busy, at most


class LeaseStore(Protocol):
    """Where leases live: ``take`` is atomic, ``renew`` and ``give_back`` only act on the caller's own."""

    def take(self, key: str, token: str, ttl: float) -> bool: ...
    def renew(self, key: str, token: str, ttl: float) -> bool: ...
    def give_back(self, key: str, token: str) -> None: ...
    def holder(self, key: str) -> str | None: ...


class MemoryLeases:
    """Leases in this process's memory (one worker, or tests)."""

    shared = False

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._held: dict[str, tuple[str, float]] = {}
        self._lock = short_lock()
        self._clock = clock

    def _current(self, key: str) -> tuple[str, float] | None:
        held = self._held.get(key)
        if held is not None and held[1] <= self._clock():
            del self._held[key]
            return None
        return held

    def take(self, key: str, token: str, ttl: float) -> bool:
        with self._lock:
            if self._current(key) is not None:
                return False
            self._held[key] = (token, self._clock() + ttl)
            return True

    def renew(self, key: str, token: str, ttl: float) -> bool:
        with self._lock:
            held = self._current(key)
            if held is None or held[0] != token:
                return False
            self._held[key] = (token, self._clock() + ttl)
            return True

    def give_back(self, key: str, token: str) -> None:
        with self._lock:
            held = self._current(key)
            if held is not None and held[0] == token:
                del self._held[key]

    def holder(self, key: str) -> str | None:
        with self._lock:
            held = self._current(key)
            return None if held is None else held[0]


_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
_GIVE_BACK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class RedisLeases:
    """Leases in Redis, for every worker and host that shares it (a ``redis.Redis`` client)."""

    shared = True

    def __init__(self, client: Any, prefix: str = "uncut:lease:") -> None:
        self.client = client
        self.prefix = prefix
        self._renew = client.register_script(_RENEW)
        self._give_back = client.register_script(_GIVE_BACK)

    def take(self, key: str, token: str, ttl: float) -> bool:
        return bool(self.client.set(self.prefix + key, token, nx=True, px=max(1, int(ttl * 1000))))

    def renew(self, key: str, token: str, ttl: float) -> bool:
        return bool(self._renew(keys=[self.prefix + key], args=[token, max(1, int(ttl * 1000))]))

    def give_back(self, key: str, token: str) -> None:
        self._give_back(keys=[self.prefix + key], args=[token])

    def holder(self, key: str) -> str | None:
        value = self.client.get(self.prefix + key)
        return value.decode() if isinstance(value, bytes) else value


class Lease:
    """A held lease, renewed in the background until ``release``; ``on_lost`` if someone else holds it now."""

    def __init__(self, store: LeaseStore, key: str, token: str, ttl: float, on_lost: Callable[[], None] | None = None) -> None:
        self.store, self.key, self.token, self.ttl = store, key, token, ttl
        self.on_lost = on_lost
        self.lost = False
        self._stop = signal_factory()()
        self._released = False
        self._keeper: Task = spawn(self._keep)

    def _keep(self) -> None:
        every = self.ttl / 3
        while not self._stop.wait(every):
            try:
                renewed = self.store.renew(self.key, self.token, self.ttl)
            except Exception:  # noqa: BLE001 - a store that is down: try again, the lease may still hold
                continue
            if not renewed:
                self.lost = True
                if self.on_lost is not None:
                    self.on_lost()
                return

    def release(self) -> None:
        """Give the lease back (once; later calls do nothing)."""
        if self._released:
            return
        self._released = True
        self._stop.set()
        try:
            self.store.give_back(self.key, self.token)
        except Exception:  # noqa: BLE001 - the store is down: the lease expires by itself within ttl
            pass


def take_lease(store: LeaseStore, key: str, ttl: float = LEASE_TTL_SECONDS, on_lost: Callable[[], None] | None = None) -> Lease | None:
    """The lease on ``key``, or None while someone else holds it."""
    token = secrets.token_hex(8)
    if not store.take(key, token, ttl):
        return None
    return Lease(store, key, token, ttl, on_lost)
