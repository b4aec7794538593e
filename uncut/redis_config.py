"""How a store names its Redis: the URL forms, their parsing and masking, in one place.

``redis://``, ``rediss://`` and ``unix://`` go to ``redis.Redis.from_url``.
``redis+sentinel://[user:password@]host:port[,host:port...]/<service>/<db>``
asks the Sentinels for the current primary of ``<service>`` (redis-py's
``Sentinel.master_for``), so a failover moves the store to the promoted
replica; the password is the primary's (Sentinels are asked without one).
Redis Cluster is refused: a stream's keys (its entries, its meta hash, its
lease) are written together by one Lua script, and the cancel channel and
chat names are global. ``redis+cluster://`` fails here, a cluster-mode server
fails the start-up check (``refuse_cluster``). Imports redis only to connect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

if TYPE_CHECKING:
    import redis

__all__ = ["RedisTarget", "STORE_RETRY_SECONDS", "masked", "parse_store_url"]

SCHEMES = ("redis://", "rediss://", "unix://", "redis+sentinel://")
# How long a producer or a reader keeps retrying an unreachable Redis (and re-seeding it) before it gives up.
STORE_RETRY_SECONDS = 10.0
_CLUSTER = (
    "Redis Cluster is not supported (a stream's keys are written together by one script); use one primary, with Sentinel for failover"
)


@dataclass(frozen=True)
class RedisTarget:
    """A parsed store URL: a plain one for ``from_url``, or the Sentinels and service to ask."""

    url: str = field(repr=False)
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @property
    def sentinel(self) -> bool:
        return bool(self.sentinels)


def masked(url: str) -> str:
    """The URL without its password, for messages and logs (every form, several hosts, ``?password=`` too)."""
    url = re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", url)
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    if not sep or "@" not in netloc:
        return url
    userinfo, _, hosts = netloc.rpartition("@")
    if ":" not in userinfo:
        return url  # a user name, no password
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{hosts}{slash}{path}"


def parse_store_url(url: str) -> RedisTarget:
    """The target ``url`` names; ValueError (with the URL masked) when it is not one this store can use."""
    value = url.strip()
    shown = masked(value)
    if value.startswith(("redis+cluster://", "rediss+cluster://")):
        raise ValueError(f"{shown}: {_CLUSTER}")
    if not value.startswith(SCHEMES):
        raise ValueError(f"{shown}: must be a redis://, rediss://, unix:// or redis+sentinel:// URL")
    if not value.startswith("redis+sentinel://"):
        return RedisTarget(value)
    rest = value[len("redis+sentinel://") :]
    netloc, _, path = rest.partition("/")
    username = password = None
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        user, _, secret = userinfo.partition(":")
        username, password = (unquote(user) or None), (unquote(secret) or None)
    sentinels = []
    for host_port in netloc.split(","):
        host, _, port = host_port.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{shown}: every Sentinel must be host:port (got {host_port.strip()!r})")
        sentinels.append((host.strip("[]"), int(port)))
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    if not parts or len(parts) > 2:
        raise ValueError(f"{shown}: must end with /<service>/<db>, such as /mymaster/0")
    db = parts[1] if len(parts) == 2 else "0"
    if not db.isdigit():
        raise ValueError(f"{shown}: the database must be a number (got {db!r})")
    return RedisTarget(value, tuple(sentinels), unquote(parts[0]), int(db), username, password)


def connect(target: RedisTarget, **options: Any) -> "redis.Redis":
    """A client for the target; for Sentinel, one that follows the primary through failovers."""
    import redis
    from redis.sentinel import Sentinel

    if not target.sentinel:
        return redis.Redis.from_url(target.url, **options)
    sentinel_options = {k: v for k, v in options.items() if k.startswith("socket_")}
    # redis-py leaves Sentinel's __init__ and master_for unannotated; master_for returns a redis.Redis
    sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_options, **options)  # type: ignore[no-untyped-call]
    primary: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        target.service, db=target.db, username=target.username, password=target.password
    )
    return primary


def refuse_cluster(client: "redis.Redis", url: str) -> None:
    """ValueError when the server runs in cluster mode (``cluster_enabled:1``): see the module's docstring."""
    if client.info("cluster").get("cluster_enabled") in (1, "1"):
        raise ValueError(f"{masked(url)} is a cluster-mode server: {_CLUSTER}")
