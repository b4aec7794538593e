"""A fast local OpenAI-compatible upstream: ``python -m bench.upstream --port P``.

Every app under test streams from this one process, so it must cost far
less per token than they do. It is a bare asyncio protocol on uvloop with
httptools parsing the requests (no framework, no coroutine per stream):
each token is one timer callback and one ``transport.write`` of bytes
encoded once per (model, token count). Tokens follow a fixed schedule
(first token after ``ttft``, then one every ``interval``), and how late the
loop fires against that schedule is counted: ``GET /bench/stats`` shows it,
so the harness can prove the upstream was not the bottleneck.

Endpoints: ``POST /v1/chat/completions`` (stream or not), ``GET /v1/models``,
``GET /healthz``, ``GET /bench/stats``, ``POST /bench/stats/reset`` and
``POST /bench/config`` (JSON with tokens, interval, ttft) so one upstream
serves every scenario without breaking the apps' pooled connections.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import httptools

COMPLETION_ID = "chatcmpl-bench"


@dataclass
class Config:
    """How every answer is shaped; times in seconds."""

    tokens: int = 50
    interval: float = 0.02
    ttft: float = 0.0


@dataclass
class Stats:
    """What the upstream did since the last reset."""

    requests: int = 0
    streams_completed: int = 0
    streams_cut: int = 0
    tokens_sent: int = 0
    active: int = 0
    peak_active: int = 0
    late_sends: int = 0  # token writes that fired more than LATE_SECONDS after their schedule
    max_lateness_ms: float = 0.0
    lateness_sum_ms: float = 0.0

    def send(self, lateness: float) -> None:
        self.tokens_sent += 1
        if lateness > LATE_SECONDS:
            self.late_sends += 1
        ms = lateness * 1000
        self.lateness_sum_ms += ms
        if ms > self.max_lateness_ms:
            self.max_lateness_ms = ms


LATE_SECONDS = 0.005


def token_text(index: int) -> str:
    """Token i of every answer: "w0", " w1", " w2"... (one "w" per token, easy to count)."""
    return ("" if index == 0 else " ") + f"w{index}"


def answer_text(tokens: int) -> str:
    return "".join(token_text(i) for i in range(tokens))


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _sse(payload: Any) -> bytes:
    return _chunked(b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n")


class Frames:
    """The pre-encoded HTTP chunks of one streamed answer, shaped like OpenAI's."""

    def __init__(self, model: str, tokens: int) -> None:
        base = {
            "id": COMPLETION_ID,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_bench",
        }

        def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
            return _sse({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

        self.role = chunk({"role": "assistant", "content": "", "refusal": None}, None)
        self.tokens = [chunk({"content": token_text(i)}, None) for i in range(tokens)]
        self.stop = chunk({}, "stop")
        self.usage = _sse({**base, "choices": [], "usage": usage(tokens)})
        self.done = _chunked(b"data: [DONE]\n\n") + b"0\r\n\r\n"


def usage(tokens: int) -> dict[str, int]:
    return {"prompt_tokens": 5, "completion_tokens": tokens, "total_tokens": 5 + tokens}


class Upstream:
    """Shared state: the current config, counters, and the frame cache."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.stats = Stats()
        self._frames: dict[tuple[str, int], Frames] = {}
        self.started = time.monotonic()

    def frames(self, model: str) -> Frames:
        key = (model, self.config.tokens)
        found = self._frames.get(key)
        if found is None:
            if len(self._frames) > 64:
                self._frames.clear()
            found = self._frames[key] = Frames(model, self.config.tokens)
        return found

    def stream_opened(self) -> None:
        self.stats.requests += 1
        self.stats.active += 1
        self.stats.peak_active = max(self.stats.peak_active, self.stats.active)

    def stream_closed(self, completed: bool) -> None:
        self.stats.active -= 1
        if completed:
            self.stats.streams_completed += 1
        else:
            self.stats.streams_cut += 1

    def stats_body(self) -> dict[str, Any]:
        body = asdict(self.stats)
        body["mean_lateness_ms"] = round(body["lateness_sum_ms"] / max(1, body["tokens_sent"]), 3)
        usage_ = resource.getrusage(resource.RUSAGE_SELF)
        body["cpu_seconds"] = usage_.ru_utime + usage_.ru_stime
        body["config"] = asdict(self.config)
        return body

    def reset(self) -> None:
        active = self.stats.active
        self.stats = Stats(active=active, peak_active=active)


def _response(status: int, body: bytes, content_type: str = "application/json", keep_alive: bool = True) -> bytes:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "OK")
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n"
        f"connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    )
    return head.encode() + body


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    b"transfer-encoding: chunked\r\ncache-control: no-cache\r\nconnection: keep-alive\r\n\r\n"
)


class Connection(asyncio.Protocol):
    """One client connection: parse a request, answer it, then the next (keep-alive)."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []
        self.busy = False  # a streamed answer is being written
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False

    # -- asyncio.Protocol ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._write(_response(400, b'{"error":"bad request"}', keep_alive=False))
            self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.busy:
            self.busy = False
            self.upstream.stream_closed(completed=False)

    # -- httptools callbacks ------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        path = self.url.split(b"?", 1)[0].rstrip(b"/")
        keep_alive = self.parser.should_keep_alive()
        handler = ROUTES.get((method, path))
        if handler is None:
            self._write(_response(404, b'{"error":{"message":"not found","type":"invalid_request_error"}}', keep_alive=keep_alive))
            return
        handler(self, b"".join(self.body), keep_alive)

    # -- handlers -------------------------------------------------------------

    def completions(self, raw: bytes, keep_alive: bool) -> None:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._write(_response(400, b'{"error":{"message":"invalid json","type":"invalid_request_error"}}'))
            return
        model = str(body.get("model") or "bench-model")
        config = self.upstream.config
        if not body.get("stream"):
            answer = {
                "id": COMPLETION_ID,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer_text(config.tokens)},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage(config.tokens),
            }
            data = _response(200, json.dumps(answer).encode(), keep_alive=keep_alive)
            delay = config.ttft + config.interval * max(0, config.tokens - 1)
            self.timer = self.loop.call_later(delay, self._write, data)
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        StreamWriter(self, self.upstream.frames(model), config, include_usage, keep_alive).start()

    def models(self, raw: bytes, keep_alive: bool) -> None:
        body = {"object": "list", "data": [{"id": "bench-model", "object": "model", "created": 0, "owned_by": "bench"}]}
        self._write(_response(200, json.dumps(body).encode(), keep_alive=keep_alive))

    def healthz(self, raw: bytes, keep_alive: bool) -> None:
        self._write(_response(200, b'{"status":"ok"}', keep_alive=keep_alive))

    def stats(self, raw: bytes, keep_alive: bool) -> None:
        self._write(_response(200, json.dumps(self.upstream.stats_body()).encode(), keep_alive=keep_alive))

    def reset(self, raw: bytes, keep_alive: bool) -> None:
        self.upstream.reset()
        self.stats(raw, keep_alive)

    def configure(self, raw: bytes, keep_alive: bool) -> None:
        try:
            given = json.loads(raw or b"{}")
            config = Config(
                tokens=int(given.get("tokens", self.upstream.config.tokens)),
                interval=float(given.get("interval", self.upstream.config.interval)),
                ttft=float(given.get("ttft", self.upstream.config.ttft)),
            )
            if not (1 <= config.tokens <= 100_000 and 0 <= config.interval <= 60 and 0 <= config.ttft <= 60):
                raise ValueError("out of range")
        except (ValueError, TypeError, AttributeError) as exc:
            self._write(_response(400, json.dumps({"error": str(exc)}).encode(), keep_alive=keep_alive))
            return
        self.upstream.config = config
        self._write(_response(200, json.dumps(asdict(config)).encode(), keep_alive=keep_alive))

    # -- plumbing -------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        self.timer = None
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    def _close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()


class StreamWriter:
    """Writes one streamed answer on its schedule with one timer per token (no coroutine)."""

    __slots__ = ("conn", "frames", "interval", "include_usage", "keep_alive", "index", "first_at")

    def __init__(self, conn: Connection, frames: Frames, config: Config, include_usage: bool, keep_alive: bool) -> None:
        self.conn = conn
        self.frames = frames
        self.interval = config.interval
        self.include_usage = include_usage
        self.keep_alive = keep_alive
        self.index = 0
        self.first_at = time.monotonic() + config.ttft

    def start(self) -> None:
        conn = self.conn
        conn.busy = True
        conn.upstream.stream_opened()
        conn._write(STREAM_HEAD + self.frames.role)
        self._schedule()

    def _schedule(self) -> None:
        due = self.first_at + self.index * self.interval
        self.conn.timer = self.conn.loop.call_later(max(0.0, due - time.monotonic()), self._tick, due)

    def _tick(self, due: float) -> None:
        conn = self.conn
        if conn.closed:
            return
        frames = self.frames
        conn.upstream.stats.send(time.monotonic() - due)
        data = frames.tokens[self.index]
        self.index += 1
        if self.index < len(frames.tokens):
            conn._write(data)
            self._schedule()
            return
        tail = data + frames.stop + (frames.usage if self.include_usage else b"") + frames.done
        conn._write(tail)
        conn.busy = False
        conn.upstream.stream_closed(completed=True)
        if not self.keep_alive:
            conn._close()


ROUTES: dict[tuple[bytes, bytes], Callable[[Connection, bytes, bool], None]] = {
    (b"POST", b"/v1/chat/completions"): Connection.completions,
    (b"GET", b"/v1/models"): Connection.models,
    (b"GET", b"/healthz"): Connection.healthz,
    (b"GET", b"/bench/stats"): Connection.stats,
    (b"POST", b"/bench/stats/reset"): Connection.reset,
    (b"POST", b"/bench/config"): Connection.configure,
}


def raise_fd_limit() -> tuple[int, int]:
    """Soft file-descriptor limit up to the hard one: thousands of streams need thousands of sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


async def serve(host: str, port: int, config: Config) -> None:
    upstream = Upstream(config)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(upstream), host, port, backlog=8192, reuse_address=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between tokens")
    parser.add_argument("--ttft", type=float, default=0.0, help="seconds before the first token")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the benchmark upstream binds loopback only")
    raise_fd_limit()
    import uvloop

    uvloop.run(serve(args.host, args.port, Config(args.tokens, args.interval, args.ttft)))


if __name__ == "__main__":
    main()
