"""A real HTTP server on loopback that speaks the OpenAI chat-completions protocol.

The app under test talks to it with the real ``ChatOpenAI`` and openai
client. A test sets ``upstream.script`` to shape the next answers: timing,
a pause, an HTTP error status before the stream, a dropped connection
mid-stream, a provider that goes silent mid-stream and holds the connection
open (``stall_at``), or tool calls (when the request offers tools and does not end
with a tool result), streamed as OpenAI does: each call's first fragment
with its id and name, then its arguments in fragments, parallel calls
interleaved by index, and ``finish_reason: "tool_calls"``. Each request is recorded with the tokens it sent and when its
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
from typing import Any, Callable


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
    stall_at: int | None = None  # after this many tokens send nothing more, holding the connection open silently...
    stall_seconds: float = 30.0  # ...until the client leaves or this passes (then the connection is closed)
    hold_after_done: float = 0.0  # wait this long between `data: [DONE]` and the end of the response
    close_after: bool = False  # close the connection after the response instead of keeping it alive
    tool_calls: tuple[tuple[str, str], ...] = ()  # (name, arguments as JSON text) to call when tools are offered
    texts: tuple[str, ...] = ()  # the tokens' texts, instead of " w1", " w2"... (tokens = their number)
    args_fragment: int = 6  # characters of arguments per streamed fragment


def token_text(index: int) -> str:
    return ("" if index == 0 else " ") + f"w{index}"


def answer_text(tokens: int) -> str:
    return "".join(token_text(i) for i in range(tokens))


def call_id(request_number: int, index: int) -> str:
    """The id the upstream gives call ``index`` of its ``request_number``-th request (from 1)."""
    return f"call_{request_number}_{index}"


def wants_tool_calls(body: dict[str, Any], script: Script) -> bool:
    """Tools offered, calls scripted, and the conversation does not end with the tools' results."""
    messages = body.get("messages") or [{}]
    return bool(script.tool_calls and body.get("tools") and messages[-1].get("role") != "tool")


@dataclass
class UpstreamRequest:
    """What one request to the upstream did."""

    body: dict[str, Any]
    peer: tuple[str, int] | None = None  # the client's address: the same for requests on one connection
    fault: str | None = None  # "429", "500" or "drop" when the script failed this request on purpose
    started: float = field(default_factory=time.monotonic)
    tokens_sent: int = 0
    stalled_at: float | None = None  # when it went silent (Script.stall_at)
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
        record = UpstreamRequest(body=body, peer=self.client_address[:2])
        with upstream.lock:
            upstream.requests.append(record)
            number = len(upstream.requests)
        script = upstream.plan(body, number) if upstream.plan is not None else upstream.script
        record.fault = str(script.fail_status) if script.fail_status else ("drop" if script.drop_at is not None else None)
        try:
            if script.fail_status:
                headers = {"Retry-After": "0"} if script.fail_status == 429 else {}
                self._json(script.fail_status, {"error": {"message": "scripted failure", "type": "server_error"}}, headers)
            elif body.get("stream"):
                self._stream(body, script, record, number)
            else:
                self._wait(script.ttft + script.interval * script.tokens, record)
                record.tokens_sent = script.tokens
                self._json(200, self._completion(body, script, number))
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

    def _stream(self, body: dict[str, Any], script: Script, record: UpstreamRequest, number: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        model = body.get("model", "upstream-model")
        base = {"id": f"chatcmpl-{number}", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
        self._event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
        self._wait(script.ttft, record)
        if wants_tool_calls(body, script):
            self._stream_calls(base, script, record, number)
            self._finish(body, base, script, record, "tool_calls")
            return
        for index in range(script.tokens):
            if index == script.stall_at:
                record.stalled_at = time.monotonic()
                self._wait(script.stall_seconds, record)
                self.close_connection = True
                return
            if index == script.drop_at:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if index == script.pause_at and script.pause:
                self._wait(script.pause, record)
            elif index:
                self._wait(script.interval, record)
            text = script.texts[index] if index < len(script.texts) else token_text(index)
            self._event({**base, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})
            record.tokens_sent += 1
        self._finish(body, base, script, record, "stop")

    def _stream_calls(self, base: dict[str, Any], script: Script, record: UpstreamRequest, number: int) -> None:
        """Each call's first fragment (index, id, name), then the arguments, calls interleaved by index."""

        def delta(call: dict[str, Any]) -> None:
            self._event({**base, "choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]})

        size = script.args_fragment
        pieces = [[args[i : i + size] for i in range(0, len(args), size)] for _, args in script.tool_calls]
        for index, (name, _) in enumerate(script.tool_calls):
            delta({"index": index, "id": call_id(number, index), "type": "function", "function": {"name": name, "arguments": ""}})
        for step in range(max(map(len, pieces), default=0)):
            for index, call_pieces in enumerate(pieces):
                if step < len(call_pieces):
                    self._wait(script.interval, record)
                    delta({"index": index, "function": {"arguments": call_pieces[step]}})
                    record.tokens_sent += 1

    def _finish(self, body: dict[str, Any], base: dict[str, Any], script: Script, record: UpstreamRequest, finish_reason: str) -> None:
        self._event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish_reason}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            self._event({**base, "choices": [], "usage": self._usage(script)})
        self._write_chunk(b"data: [DONE]\n\n")
        self._wait(script.hold_after_done, record)
        self._write_chunk(b"")
        if script.close_after:
            self.close_connection = True

    def _usage(self, script: Script) -> dict[str, int]:
        return {"prompt_tokens": 5, "completion_tokens": script.tokens, "total_tokens": 5 + script.tokens}

    def _completion(self, body: dict[str, Any], script: Script, number: int) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": answer_text(script.tokens)}
        finish_reason = "stop"
        if wants_tool_calls(body, script):
            calls = [
                {"id": call_id(number, i), "type": "function", "function": {"name": name, "arguments": args}}
                for i, (name, args) in enumerate(script.tool_calls)
            ]
            message, finish_reason = {"role": "assistant", "content": None, "tool_calls": calls}, "tool_calls"
        return {
            "id": f"chatcmpl-{number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "upstream-model"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
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
        # Or a script per request, from its body and its number (from 1): the soak derives answers from prompts.
        self.plan: Callable[[dict[str, Any], int], Script] | None = None
        self.requests: list[UpstreamRequest] = []
        self.lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.upstream = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def reset(self, script: Script | None = None) -> None:
        self.script = script or Script()
        self.plan = None
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
