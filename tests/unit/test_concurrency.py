"""The client-socket check behind the disconnect watch."""

from __future__ import annotations

import socket

from webapp.concurrency import _peer_closed


def test_a_socket_with_nothing_to_read_is_not_a_client_that_left() -> None:
    left, right = socket.socketpair()
    try:
        left.settimeout(0.05)  # a spurious wake-up: the peek times out, the client is still there
        assert _peer_closed(left) is False
        right.close()
        assert _peer_closed(left) is True
    finally:
        left.close()
