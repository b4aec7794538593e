"""Clients that follow the EventSource rules and remember everything they received.

Each client runs streams one after another until the soak ends. A stream
starts with ``POST /api/chat/events``; after any cut (its own, on purpose,
sometimes in the middle of a frame, or the network's) it waits the
advertised ``retry`` and reconnects with ``Last-Event-ID``; ``204`` means
it already has everything; a terminal event (``end`` or ``error``) ends
the stream. Some clients leave a stream for good, to check that the run
stops. Every connection, event and comment goes into the stream's history.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.soak.plan import answer, prompt
from uncut.sse import ServerSentEvent, SSEParser

MAX_RECONNECTS = 40  # a stream still not ended after this many reconnects is counted as lost
START_ATTEMPTS = 20  # refused starts (503, 429, a proxy's 502) are retried this many times


@dataclass
class Connection:
    """One HTTP exchange of a stream."""

    method: str
    status: int = 0
    started: float = field(default_factory=time.monotonic)
    events: list[tuple[str | None, str, Any]] = field(default_factory=list)  # (id, kind, data)
    ended: str = ""  # terminal, cut (by us), left (for good), closed (by the server), transport, http


@dataclass
class History:
    """A stream as its client saw it, for the checks."""

    tag: str
    tokens: int
    expected: str
    connections: list[Connection] = field(default_factory=list)
    terminal: tuple[str, Any] | None = None  # ("end", data) or ("error", data) or ("http", status)
    left_at: float | None = None  # the client left for good at this time
    gave_up: bool = False  # no terminal after MAX_RECONNECTS: the stream ended silently for this client
    orphaned: bool = False  # its start failed before an event id: a run may exist that nobody can follow
    cuts: int = 0

    @property
    def events(self) -> list[tuple[str | None, str, Any]]:
        return [event for connection in self.connections for event in connection.events]

    @property
    def seqs(self) -> list[int]:
        """The sequence numbers received, in order (an id is ``<stream id>:<seq>``)."""
        return [int(event_id.rsplit(":", 1)[1]) for event_id, _, _ in self.events if event_id]


@dataclass(frozen=True)
class Behaviour:
    """How a client treats one stream: where it cuts (bytes into a connection) and whether it leaves for good."""

    cuts: tuple[int, ...]
    leave_after: int | None

    @staticmethod
    def draw(rng: random.Random, cut_rate: float, leave_rate: float) -> "Behaviour":
        cuts = tuple(rng.randrange(200, 1500) for _ in range(rng.choice((1, 1, 2)))) if rng.random() < cut_rate else ()
        leave = rng.randrange(300, 1200) if rng.random() < leave_rate else None
        return Behaviour(cuts, leave)


class Client:
    """One simulated user of an EventSource-style front end."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, number: int, rng: random.Random, cut_rate: float, leave_rate: float) -> None:
        self.http = http
        self.base_url = base_url
        self.number = number
        self.rng = rng
        self.cut_rate = cut_rate
        self.leave_rate = leave_rate
        self.histories: list[History] = []

    async def run_until(self, stop_at: float) -> None:
        index = 0
        while time.monotonic() < stop_at:
            tokens, interval_ms = self.rng.randrange(15, 50), self.rng.choice((20, 40, 60))
            behaviour = Behaviour.draw(self.rng, self.cut_rate, self.leave_rate)
            await self.stream(f"c{self.number}s{index}", tokens, interval_ms, behaviour)
            index += 1

    async def stream(self, tag: str, tokens: int, interval_ms: int, behaviour: Behaviour) -> History:
        """One stream to its end. A start whose connection failed before any event id may have started a
        run nobody can resume: that run is left (the service must stop it), and a new one starts under a new tag."""
        for attempt in range(START_ATTEMPTS):
            history = History(
                tag if attempt == 0 else f"{tag}r{attempt}", tokens, answer(tag if attempt == 0 else f"{tag}r{attempt}", tokens)
            )
            self.histories.append(history)
            if await self._follow(history, interval_ms, behaviour):
                return history
            history.left_at = time.monotonic()  # orphaned: started, perhaps, but never named
            history.orphaned = True
        return history

    async def _follow(self, history: History, interval_ms: int, behaviour: Behaviour) -> bool:
        """Follow one run to its terminal event; False if its start never got as far as an event id."""
        cuts = list(behaviour.cuts)
        last_id: str | None = None
        retry = 0.3
        refusals = reconnects = 0
        while history.terminal is None and history.left_at is None:
            if last_id is None:
                request = self.http.build_request(
                    "POST", self.base_url + "/api/chat/events", json={"message": prompt(history.tag, history.tokens, interval_ms)}
                )
            else:
                reconnects += 1
                if reconnects > MAX_RECONNECTS:
                    history.gave_up = True
                    return True
                request = self.http.build_request("GET", self.base_url + "/api/chat/events", headers={"Last-Event-ID": last_id})
            connection = Connection(request.method)
            history.connections.append(connection)
            cut_at = cuts.pop(0) if cuts else None
            leave_at = behaviour.leave_after if not cuts and cut_at is None else None
            last_id, retry = await self._exchange(request, connection, history, last_id, retry, cut_at, leave_at)
            if last_id is None and history.terminal is None and history.left_at is None:
                if connection.ended != "http":
                    return False  # the start failed after it may have begun a run
                refusals += 1  # refused before any run began: the same start may be tried again
                if refusals > START_ATTEMPTS:
                    history.gave_up = True
                    return True
            if history.terminal is None and history.left_at is None:
                await asyncio.sleep(retry)
        return True

    async def _exchange(
        self,
        request: httpx.Request,
        connection: Connection,
        history: History,
        last_id: str | None,
        retry: float,
        cut_at: int | None,
        leave_at: int | None,
    ) -> tuple[str | None, float]:
        """One connection; returns the last event id and the reconnection delay to use next."""
        parser = SSEParser()
        received = 0
        try:
            response = await self.http.send(request, stream=True)
        except httpx.TransportError:
            connection.ended = "transport"
            return last_id, retry
        try:
            connection.status = response.status_code
            if response.status_code == 204:
                history.terminal = ("http", 204)
                connection.ended = "terminal"
                return last_id, retry
            if response.status_code in (429, 502, 503, 504):  # refused or no instance up: try again shortly
                connection.ended = "http"
                return last_id, max(retry, float(response.headers.get("Retry-After", "0.5") or 0.5))
            if response.status_code != 200:  # 404 after a Redis restart: an explicit, typed answer
                body = await response.aread()
                history.terminal = ("http", {"status": response.status_code, "body": body.decode("utf-8", "replace")[:200]})
                connection.ended = "http"
                return last_id, retry
            async for chunk in response.aiter_raw():
                if cut_at is not None and received + len(chunk) >= cut_at:
                    chunk = chunk[: max(0, cut_at - received)]  # the connection drops here, maybe mid-frame
                    self._feed(parser, chunk, connection, history)
                    history.cuts += 1
                    connection.ended = "cut"
                    break
                if leave_at is not None and received + len(chunk) >= leave_at:
                    history.left_at = time.monotonic()
                    connection.ended = "left"
                    break
                received += len(chunk)
                if self._feed(parser, chunk, connection, history):
                    connection.ended = "terminal"
                    break
            else:
                connection.ended = "closed"
        except httpx.TransportError:
            connection.ended = connection.ended or "transport"
        finally:
            await response.aclose()
        last_id = next((event_id for event_id, _, _ in reversed(connection.events) if event_id), last_id)
        if parser.retry is not None:
            retry = parser.retry / 1000
        return last_id, retry

    @staticmethod
    def _feed(parser: SSEParser, chunk: bytes, connection: Connection, history: History) -> bool:
        """Record what the bytes complete; True once a terminal event arrived."""
        for item in parser.feed(chunk):
            if not isinstance(item, ServerSentEvent):
                continue
            try:
                data = item.json()
            except ValueError:
                data = item.data
            connection.events.append((item.id, item.event, data))
            if item.event in ("end", "error"):
                history.terminal = (item.event, data)
                return True
        return False
