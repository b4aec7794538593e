"""Request bodies read whole before the app runs: within a deadline, and within the size cap.

gunicorn's gevent worker times the headers, not the body. A client that
sends its headers and then trickles (or never finishes) its body would
otherwise hold a worker connection for as long as it likes; four such
clients held all of a four-connection worker while ``/healthz`` timed out.
This WSGI middleware reads the whole body first and answers ``408`` (and
closes the connection) when the deadline passes, ``413`` when a chunked
body passes ``WEBAPP_MAX_BODY_BYTES``. The app then reads the body from
memory.

The deadline is per byte, not per read. One ``read()`` of gunicorn's body
loops over ``recv()`` calls until it has what it asked for, and a socket
timeout only bounds each ``recv()``: a body trickled at 1 byte/s never
trips it, and was served after 27-31 s instead of a ``408`` at 10 s.
Under gevent (the service's worker) the whole read runs inside one
``gevent.Timeout``, which fires at the deadline whatever the reads are
doing. Other servers (threads, the development server) get what the
socket allows: its timeout is what is left of the deadline before every
read, and the reads are small (4 KiB), so a trickle overruns the deadline
by at most the time one small read takes to fill.

A chunked body is counted as it is read: past the cap, nothing is parsed
(the app would otherwise read on after the counted part and serve its
tail) and the connection is closed, since the rest of it was never read.
A body whose ``Content-Length`` is over the cap is not read at all; the
app answers ``413`` from the header.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import time
from typing import Any, Callable, ContextManager, Iterable

from uncut.gunicorn import client_socket, under_gevent

# Without gevent, one read waits for at most this many bytes before the timeout is set again.
_SMALL_READ_BYTES = 4096
# Under gevent, the deadline bounds the whole read, so the reads may be large.
_LARGE_READ_BYTES = 65_536
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class BodyTimeout(Exception):
    """The client did not send its body in time."""


class BodyTooLarge(Exception):
    """A body without a Content-Length went past the cap while it was read."""


class BodyDeadline:
    """WSGI middleware: the request body within ``seconds`` of the app being called (or 408), at most ``max_bytes`` (or 413).

    ``per_byte=False`` restores the old per-read deadline (64 KiB reads, no
    overall timer); it exists for the tests' negative control.
    """

    def __init__(self, app: WSGIApp, seconds: float, max_bytes: int, *, per_byte: bool = True) -> None:
        self.app = app
        self.seconds = seconds
        self.max_bytes = max_bytes
        self.per_byte = per_byte

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        chunked = _is_chunked(environ)
        if chunked or (self.seconds and _has_length(environ)):
            try:
                body = self._read(environ)
            except BodyTimeout:
                message = f"The request body did not arrive within {self.seconds:g} s."
                return _refuse(environ, start_response, "408 Request Timeout", "request_timeout", message)
            except BodyTooLarge:
                message = f"The request body is larger than {self.max_bytes} bytes."
                return _refuse(environ, start_response, "413 Request Entity Too Large", "request_too_large", message)
            if body is not None:
                environ["wsgi.input"] = io.BytesIO(body)
                environ["CONTENT_LENGTH"] = str(len(body))
                environ.pop("HTTP_TRANSFER_ENCODING", None)
                environ["wsgi.input_terminated"] = True
        return self.app(environ, start_response)

    def _read(self, environ: dict[str, Any]) -> bytes | None:
        """The whole body, or None when its Content-Length is over the cap (the app answers 413 from it)."""
        length = environ.get("CONTENT_LENGTH")
        expected = int(length) if length and length.isdigit() and not _is_chunked(environ) else None
        if expected is not None and expected > self.max_bytes:
            return None
        sock = client_socket(environ)
        previous = _timeout_of(sock)
        try:
            with self._deadline():
                return self._read_within(environ["wsgi.input"], sock, expected)
        finally:
            if sock is not None:
                try:
                    sock.settimeout(previous)
                except OSError:
                    pass

    def _deadline(self) -> ContextManager[Any]:
        """One timer for the whole body under gevent; elsewhere the per-read timeouts are all there is."""
        if self.seconds and self.per_byte and under_gevent():
            import gevent

            return gevent.Timeout(self.seconds, BodyTimeout)
        return contextlib.nullcontext()

    def _read_within(self, stream: Any, sock: Any, expected: int | None) -> bytes:
        deadline = time.monotonic() + self.seconds if self.seconds else None
        piece = _SMALL_READ_BYTES if self.per_byte and not under_gevent() else _LARGE_READ_BYTES
        parts: list[bytes] = []
        received = 0
        # Bounded: each turn reads at least one byte of a body of at most max_bytes + 1, or ends the loop.
        while expected is None or received < expected:
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BodyTimeout()
                if sock is not None:
                    sock.settimeout(remaining)
            left = (self.max_bytes + 1 if expected is None else expected) - received
            try:
                part = stream.read(min(piece, left))
            except (socket.timeout, TimeoutError):
                raise BodyTimeout() from None
            if not part:
                break
            parts.append(part)
            received += len(part)
            if expected is None and received > self.max_bytes:
                raise BodyTooLarge()
        return b"".join(parts)


def _is_chunked(environ: dict[str, Any]) -> bool:
    return "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()


def _has_length(environ: dict[str, Any]) -> bool:
    length = environ.get("CONTENT_LENGTH") or ""
    return length.isdigit() and int(length) > 0


def _timeout_of(sock: Any) -> float | None:
    try:
        return sock.gettimeout() if sock is not None else None
    except OSError:
        return None


class _ThenClose:
    """The refusal's body; once the server has written it, the connection is shut down.

    gunicorn drops an application's ``Connection: close`` (a hop-by-hop
    header) and would go on to read the rest of the unsent body, holding
    the connection for its keep-alive time; a socket shut down here ends
    that read at once.
    """

    def __init__(self, body: bytes, sock: Any) -> None:
        self._body = body
        self._sock = sock

    def __iter__(self) -> Any:
        return iter([self._body])

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _refuse(environ: dict[str, Any], start_response: Callable[..., Any], status: str, kind: str, message: str) -> _ThenClose:
    body = json.dumps({"error": {"type": kind, "message": message}}).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Connection", "close")])
    return _ThenClose(body, client_socket(environ))
