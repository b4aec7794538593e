"""A deadline for request bodies: gunicorn's gevent worker times the headers, not the body.

A client that sends its headers and then trickles (or never finishes) its
body would otherwise hold a worker connection for as long as it likes;
four such clients held all of a four-connection worker while ``/healthz``
timed out. This WSGI middleware reads the whole body before the app runs,
each read bounded by what is left of the deadline, and answers ``408``
(and closes the connection) when the time is up. The app then reads the
body from memory. Bodies are small here (``WEBAPP_MAX_BODY_BYTES``); one
larger than that is left for the app to refuse with ``413``.
"""

from __future__ import annotations

import io
import json
import socket
import time
from typing import Any, Callable, Iterable

from uncut.concurrency import client_socket

_READ_BYTES = 65_536
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class BodyTimeout(Exception):
    """The client did not send its body in time."""


class BodyDeadline:
    """WSGI middleware: the request body within ``seconds`` of the app being called, or 408."""

    def __init__(self, app: WSGIApp, seconds: float, max_bytes: int) -> None:
        self.app = app
        self.seconds = seconds
        self.max_bytes = max_bytes

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self.seconds and _has_body(environ):
            try:
                body = self._read(environ)
            except BodyTimeout:
                return _timed_out(environ, start_response, self.seconds)
            if body is not None:
                environ["wsgi.input"] = io.BytesIO(body)
                environ["CONTENT_LENGTH"] = str(len(body))
                environ.pop("HTTP_TRANSFER_ENCODING", None)
                environ["wsgi.input_terminated"] = True
        return self.app(environ, start_response)

    def _read(self, environ: dict[str, Any]) -> bytes | None:
        """The whole body, or None when it is too large to buffer (the app answers 413)."""
        length = environ.get("CONTENT_LENGTH")
        expected = int(length) if length and length.isdigit() else None
        if expected is not None and expected > self.max_bytes:
            return None
        stream = environ["wsgi.input"]
        sock = client_socket(environ)
        deadline = time.monotonic() + self.seconds
        previous = _timeout_of(sock)
        parts: list[bytes] = []
        received = 0
        try:
            while expected is None or received < expected:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BodyTimeout()
                if sock is not None:
                    sock.settimeout(remaining)
                want = _READ_BYTES if expected is None else min(_READ_BYTES, expected - received)
                try:
                    part = stream.read(want)
                except (socket.timeout, TimeoutError):
                    raise BodyTimeout() from None
                if not part:
                    break
                parts.append(part)
                received += len(part)
                if expected is None and received > self.max_bytes:
                    return None
        finally:
            if sock is not None:
                try:
                    sock.settimeout(previous)
                except OSError:
                    pass
        return b"".join(parts)


def _has_body(environ: dict[str, Any]) -> bool:
    length = environ.get("CONTENT_LENGTH") or ""
    return (length.isdigit() and int(length) > 0) or "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()


def _timeout_of(sock: Any) -> float | None:
    try:
        return sock.gettimeout() if sock is not None else None
    except OSError:
        return None


class _ThenClose:
    """The 408's body; once the server has written it, the connection is shut down.

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


def _timed_out(environ: dict[str, Any], start_response: Callable[..., Any], seconds: float) -> _ThenClose:
    body = json.dumps({"error": {"type": "request_timeout", "message": f"The request body did not arrive within {seconds:g} s."}}).encode()
    start_response("408 Request Timeout", [
        ("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Connection", "close"),
    ])
    return _ThenClose(body, client_socket(environ))
