"""A real HTTP server on loopback that speaks the OpenAI chat-completions protocol.

The app under test talks to it with the real ``ChatOpenAI`` and openai
client. A test sets ``upstream.script`` to shape the next answers: timing,
a pause, an HTTP error status before the stream, or a dropped connection
mid-stream. Each request is recorded with the tokens it sent and when its
client closed the connection; during waits the server watches the socket,
so a client that leaves during a pause is seen at once, as a real provider
would see it.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Script:
    """How the upstream answers; all times in seconds."""

    tokens: int = 10
    ttft: float = 0.0
    interval: float = 0.01
    pause: float = 0.0
    pause_at: int | None = None
    fail_status: int | None = None  # answer with this status instead of a stream
    drop_at: int | None = None  # close the connection after this many tokens
    hold_after_done: float = 0.0  # wait this long between `data: [DONE]` and the end of the response
    close_after: bool = False  # close the connection after the response instead of keeping it alive


def token_text(index: int) -> str:
    return ("" if index == 0 else " ") + f"w{index}"


def answer_text(tokens: int) -> str:
    return "".join(token_text(i) for i in range(tokens))


@dataclass
class UpstreamRequest:
    """What one request to the upstream did."""

    body: dict[str, Any]
    peer: tuple[str, int] | None = None  # the client's address: the same for requests on one connection
    started: float = field(default_factory=time.monotonic)
    tokens_sent: int = 0
    client_closed_at: float | None = None
    finished_at: float | None = None
    done: threading.Event = field(default_factory=threading.Event)


class _ClientGone(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": "upstream-model", "object": "model"}]})
        else:
            self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
            return
        upstream = self.server.upstream
        script = upstream.script
        record = UpstreamRequest(body=body, peer=self.client_address[:2])
        upstream.requests.append(record)
        try:
            if script.fail_status:
                headers = {"Retry-After": "0"} if script.fail_status == 429 else {}
                self._json(script.fail_status, {"error": {"message": "scripted failure", "type": "server_error"}}, headers)
            elif body.get("stream"):
                self._stream(body, script, record)
            else:
                self._wait(script.ttft + script.interval * script.tokens, record)
                record.tokens_sent = script.tokens
                self._json(200, self._completion(body, script))
        except _ClientGone:
            record.client_closed_at = time.monotonic()
            self.close_connection = True
        finally:
            record.finished_at = time.monotonic()
            record.done.set()

    # -- helpers ----------------------------------------------------------

    def _wait(self, seconds: float, record: UpstreamRequest) -> None:
        """Sleep, but notice at once if the client closes the connection."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([self.connection], [], [], min(remaining, 0.05))
            if readable:
                try:
                    if self.connection.recv(1, socket.MSG_PEEK) == b"":
                        raise _ClientGone
                except OSError:
                    raise _ClientGone from None

    def _write_chunk(self, data: bytes) -> None:
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        except OSError:
            raise _ClientGone from None

    def _event(self, payload: Any) -> None:
        self._write_chunk(b"data: " + json.dumps(payload).encode() + b"\n\n")

    def _stream(self, body: dict[str, Any], script: Script, record: UpstreamRequest) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        model = body.get("model", "upstream-model")
        base = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
        self._event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
        self._wait(script.ttft, record)
        for index in range(script.tokens):
            if index == script.drop_at:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if index == script.pause_at and script.pause:
                self._wait(script.pause, record)
            elif index:
                self._wait(script.interval, record)
            self._event({**base, "choices": [{"index": 0, "delta": {"content": token_text(index)}, "finish_reason": None}]})
            record.tokens_sent += 1
        self._event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            self._event({**base, "choices": [], "usage": self._usage(script)})
        self._write_chunk(b"data: [DONE]\n\n")
        self._wait(script.hold_after_done, record)
        self._write_chunk(b"")
        if script.close_after:
            self.close_connection = True

    def _usage(self, script: Script) -> dict[str, int]:
        return {"prompt_tokens": 5, "completion_tokens": script.tokens, "total_tokens": 5 + script.tokens}

    def _completion(self, body: dict[str, Any], script: Script) -> dict[str, Any]:
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "upstream-model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer_text(script.tokens)}, "finish_reason": "stop"}],
            "usage": self._usage(script),
        }

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    upstream: "OpenAIUpstream"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A kept-alive client that goes away between requests (a stopped app) is normal, not an error."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class OpenAIUpstream:
    """Start with ``with OpenAIUpstream() as upstream:``; point OPENAI_BASE_URL at ``upstream.base_url``."""

    def __init__(self) -> None:
        self.script = Script()
        self.requests: list[UpstreamRequest] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.upstream = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def reset(self, script: Script | None = None) -> None:
        self.script = script or Script()
        self.requests.clear()

    def wait_for_requests(self, count: int, timeout: float = 30.0) -> list[UpstreamRequest]:
        """Block until ``count`` requests have finished, or fail."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"upstream saw {len(self.requests)} of {count} requests")
            time.sleep(0.01)
        for record in self.requests[:count]:
            if not record.done.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError("an upstream request did not finish in time")
        return self.requests[:count]

    def __enter__(self) -> "OpenAIUpstream":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
