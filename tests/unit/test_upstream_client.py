"""The upstream client's pieces that need no server: the quick idle probe and the stream types."""

from __future__ import annotations

import socket

import openai
from openai.types.chat import ChatCompletionChunk

from uncut.upstream_client import ReusableStream, StreamingCompletions, readable_now


def test_readable_now_sees_data_and_eof_without_consuming_them() -> None:
    left, right = socket.socketpair()
    try:
        assert readable_now(left) is False
        right.sendall(b"x")
        assert readable_now(left) is True
        assert left.recv(1) == b"x"  # the probe did not read it
        assert readable_now(left) is False
        right.close()
        assert readable_now(left) is True  # EOF: a server-closed idle connection
    finally:
        left.close()


def test_readable_now_treats_a_closed_socket_as_readable() -> None:
    sock = socket.socket()
    sock.close()
    assert readable_now(sock) is True


class _Completions:
    """Stands in for the SDK resource: records what reaches it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def create(self, **params: object) -> str:
        self.calls.append("create")
        return "completion"

    @property
    def with_streaming_response(self) -> str:
        return "passed through"


def test_streaming_completions_leave_everything_but_streams_to_the_sdk() -> None:
    inner = _Completions()
    wrapped = StreamingCompletions(inner)
    assert wrapped.create(model="m", messages=[]) == "completion"
    assert wrapped.with_streaming_response == "passed through"
    assert inner.calls == ["create"]


def test_stream_types_are_sdk_streams_of_dicts_or_of_chunk_models() -> None:
    raw = StreamingCompletions(_Completions(), raw_chunks=True)._stream_type
    typed = StreamingCompletions(_Completions(), raw_chunks=False)._stream_type
    assert raw == ReusableStream[object] and typed == ReusableStream[ChatCompletionChunk]
    assert issubclass(ReusableStream, openai.Stream)
