"""A loopback HTTP server that answers every POST with one recorded body: for negative controls.

A test records what the service sent, breaks it on purpose (drops one kind
of event), and points a real client at this server to show that the client
would have caught the slip.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator

from tests.support.servers import free_port


def without_blocks(body: bytes, drop: Callable[[bytes], bool]) -> bytes:
    """``body``'s SSE blocks, less those ``drop`` picks."""
    return b"".join(block + b"\n\n" for block in body.split(b"\n\n") if block and not drop(block))


@contextmanager
def replay_server(body: bytes, content_type: str = "text/event-stream", posts: list[bytes] | None = None) -> Iterator[str]:
    """Serve ``body`` to every POST, appending each request's body to ``posts``; yields the server's base URL."""

    class Replay(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # the body ends when the connection closes

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            sent = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if posts is not None:
                posts.append(sent)
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Replay)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
