"""The openai client the service streams through, and three fixes to how the sync SDK streams.

Each was found by profiling the service under load (bench/RESULTS.md) and
each keeps the SDK's public behaviour: the same requests, the same errors.

1. ``StreamingCompletions(raw_chunks=True)``: ChatOpenAI converts every
   streamed chunk model straight back into a dict, so the SDK hands it the
   dict it parsed instead of building the model (half the CPU per token).
2. ``ReusableStream``: the sync SDK stops reading at ``data: [DONE]`` and
   closes the response with its chunked terminator unread, which makes the
   HTTP client drop the connection; every stream then paid a new TCP (and
   TLS) handshake, and under load new streams queued behind connects. The
   SDK's async stream drains the rest; this does the same.
3. ``QuickProbeBackend``: before reusing an idle connection the pool checks
   that the server has not closed it, with ``select.poll``. gevent's patched
   poll builds watchers for that zero-timeout check; the original poll is
   one cheap system call and never blocks.
4. Pool shards: httpcore's pool scans all its connections whenever a
   request starts or a response closes, so one pool for thousands of open
   streams costs O(streams) per stream. Streams go round-robin to
   ``POOL_SHARDS`` clients, each with its own pool (and the same settings).
"""

from __future__ import annotations

import functools
import itertools
import logging
import select
import socket
from typing import Any, Iterable, Iterator, TypeVar

import httpcore2
import httpx2
import openai
from httpcore2._backends.sync import SyncBackend, SyncStream
from openai._legacy_response import LegacyAPIResponse
from openai._streaming import ServerSentEvent

from uncut.concurrency import under_gevent

__all__ = ["POOL_SHARDS", "StreamingCompletions", "build_http_client", "sharded_clients"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# How long a finished stream may take to deliver its last bytes (the chunked
# terminator after `data: [DONE]`) before its connection is dropped instead.
DRAIN_SECONDS = 1.0
# Idle connections kept for the next streams; the pool checks each of them
# whenever a stream starts or ends, so more would cost more than they save.
MAX_IDLE_CONNECTIONS = 100
# Independent connection pools; streams are spread over them round-robin.
POOL_SHARDS = 8


def build_http_client(*, max_connections: int, timeout: float, shards: int = 1) -> httpx2.Client:
    """The SDK's default client with one shard's share of the pool and the quick idle probe."""
    # One connection per open stream: the SDK's default pool (1000 connections)
    # would make stream 1001 wait for a free one, silently.
    per_shard = max(1, -(-max_connections // shards))
    limits = httpx2.Limits(max_connections=per_shard, max_keepalive_connections=min(per_shard, max(1, MAX_IDLE_CONNECTIONS // shards)))
    transport = httpx2.HTTPTransport(limits=limits)
    pool = getattr(transport, "_pool", None)
    if isinstance(pool, httpcore2.ConnectionPool) and hasattr(pool, "_network_backend"):
        pool._network_backend = QuickProbeBackend()  # httpx has no argument for httpcore's network_backend
    return openai.DefaultHttpxClient(transport=transport, timeout=timeout)


def sharded_clients(root_client: openai.OpenAI, *, max_connections: int, timeout: float, shards: int = POOL_SHARDS) -> list[openai.OpenAI]:
    """``root_client`` (built on ``build_http_client(..., shards=shards)``) and copies of it on pools of their own.

    Together the pools hold at most ``max_connections``: the root's is one
    of the shards, so calls that go to it directly stay within the bound.
    """
    return [
        root_client,
        *(
            root_client.with_options(http_client=build_http_client(max_connections=max_connections, timeout=timeout, shards=shards))
            for _ in range(shards - 1)
        ),
    ]


class StreamingCompletions:
    """``client.chat.completions`` whose streams are ``ReusableStream``s, of chunk dicts if ``raw_chunks``.

    Uses the SDK's raw-response API (``with_raw_response`` and
    ``parse(to=...)``), which keeps its HTTP error handling and its check
    for ``error`` objects inside the stream. Calls go round-robin to the
    given resources (one per pool shard); everything but ``create`` goes
    to the first, untouched.
    """

    def __init__(self, completions: Any | list[Any], *, raw_chunks: bool = True) -> None:
        from openai.types.chat import ChatCompletionChunk

        self._shards = list(completions) if isinstance(completions, list) else [completions]
        self._completions = self._shards[0]
        self._next = itertools.cycle(self._shards).__next__
        self._stream_type = ReusableStream[object] if raw_chunks else ReusableStream[ChatCompletionChunk]

    def create(self, **params: Any) -> Any:
        completions = self._next()
        if not params.get("stream"):
            return completions.create(**params)
        raw = completions.with_raw_response.create(**params)
        if not isinstance(raw, LegacyAPIResponse):
            # An instrumentation wrapped ``create`` and parsed the stream itself (opentelemetry-instrumentation-openai-v2
            # returns its wrapper of the SDK's own stream, whose ``parse`` takes no ``to``): that stream of chunk models
            # is read as it is, without fixes 1 and 2.
            return raw
        return raw.parse(to=self._stream_type)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._completions, name)


class ReusableStream(openai.Stream[_T]):
    """An SDK stream that reads its response to the end after ``[DONE]``, so the connection is reused."""

    def _iter_events(self) -> Iterator[ServerSentEvent]:
        for event in super()._iter_events():
            if event.data.startswith("[DONE]"):
                drain(self.response)
            yield event


def drain(response: Any, seconds: float = DRAIN_SECONDS) -> bool:
    """Read what is left of an HTTP/1.1 response body for at most ``seconds``; True if it ended.

    Only under gevent, where a blocked read can be interrupted: a server that
    sent ``[DONE]`` but keeps the response open must not hold up the
    stream's end. Without gevent the connection is dropped, as the SDK does.
    """
    if response.is_closed or response.http_version != "HTTP/1.1" or not under_gevent():
        return False
    import gevent

    try:
        with gevent.Timeout(seconds, False):
            for _ in response.stream:
                pass
            return True
    except Exception:  # noqa: BLE001 - the answer is complete; a failed drain only costs the connection
        log.debug("draining a finished upstream response failed", exc_info=True)
    return False


@functools.lru_cache(maxsize=2)
def _original_poll(patched: bool) -> Any:
    if patched:
        from gevent import monkey

        return monkey.get_original("select", "poll")
    return select.poll


def readable_now(sock: socket.socket) -> bool:
    """Whether ``sock`` has bytes (or EOF) to read, without waiting and without gevent watchers."""
    try:
        fd = sock.fileno()
    except OSError:
        return True
    if fd < 0:
        return True
    poller = _original_poll(under_gevent())()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class QuickProbeStream(SyncStream):
    """httpcore's sync stream with a zero-timeout readability probe that skips gevent's poll."""

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return readable_now(self._sock)
        return super().get_extra_info(info)

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> Any:
        upgraded = super().start_tls(ssl_context, server_hostname, timeout)
        return QuickProbeStream(upgraded._sock) if type(upgraded) is SyncStream else upgraded


class QuickProbeBackend(SyncBackend):
    """httpcore's sync backend, handing out ``QuickProbeStream``s."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> Any:
        stream = super().connect_tcp(host, port, timeout, local_address, socket_options)
        return QuickProbeStream(stream._sock) if type(stream) is SyncStream else stream
