"""Synchronous stream readers that record what arrived and when.

They use httpx over a real socket, parse with the project's SSE parser,
and keep the transport error if the transfer was cut, so a test can tell
a clean end from a truncated one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx

from uncut.sse import Comment, ServerSentEvent, SSEParser


@dataclass
class StreamRecord:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    events: list[tuple[float, ServerSentEvent]] = field(default_factory=list)
    comments: list[tuple[float, Comment]] = field(default_factory=list)
    chunks: list[tuple[float, bytes]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None  # when the transfer ended, cleanly or not
    transport_error: Exception | None = None

    @property
    def duration(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    def of_kind(self, kind: str) -> list[ServerSentEvent]:
        return [event for _, event in self.events if event.event == kind]

    @property
    def kinds(self) -> list[str]:
        return [event.event for _, event in self.events]

    @property
    def text(self) -> str:
        return "".join(event.json()["text"] for event in self.of_kind("token"))

    @property
    def terminal(self) -> ServerSentEvent | None:
        ends = [e for _, e in self.events if e.event in ("end", "error")]
        return ends[-1] if ends else None

    def token_times(self) -> list[float]:
        return [t - self.started for t, event in self.events if event.event == "token"]

    @property
    def body(self) -> bytes:
        return b"".join(chunk for _, chunk in self.chunks)


def read_stream(
    method: str,
    url: str,
    *,
    json: Any = None,
    timeout: float = 30.0,
    stop_when: Callable[[StreamRecord], bool] | None = None,
    headers: dict[str, str] | None = None,
) -> StreamRecord:
    """Read a whole response, SSE or not; stop early (closing the socket) when ``stop_when`` says so."""
    record = StreamRecord()
    parser = SSEParser()
    try:
        with httpx.Client(timeout=timeout) as client:
            with client.stream(method, url, json=json, headers=headers) as response:
                record.status = response.status_code
                record.headers = dict(response.headers)
                for chunk in response.iter_bytes():  # decoded (gzip), as it arrives
                    now = time.monotonic()
                    record.chunks.append((now, chunk))
                    if response.headers.get("content-type", "").startswith("text/event-stream"):
                        for item in parser.feed(chunk):
                            target = record.events if isinstance(item, ServerSentEvent) else record.comments
                            target.append((now, item))  # type: ignore[arg-type]
                    if stop_when is not None and stop_when(record):
                        break
    except httpx.TransportError as exc:
        record.transport_error = exc
    record.ended = time.monotonic()
    return record
