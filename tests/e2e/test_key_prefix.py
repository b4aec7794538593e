"""Two apps on one Redis, each with its own ``RedisStore(key_prefix=...)``, never see each other's streams,
chat names or cancels; the negative control (a second app with the same prefix) sees all three."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.redis_server import RedisServer
from uncut.options import StreamOptions
from uncut.redis_store import RedisStore
from uncut.scripted import ScriptedChatModel
from uncut.streams import StreamNotFound, Streams

pytestmark = pytest.mark.e2e

OWNER = "owner-1"


@pytest.fixture
def redis_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    request.addfinalizer(server.stop)
    yield server.start()


def app(url: str, prefix: str) -> Streams:
    return Streams(StreamOptions(heartbeat_seconds=0.2), store=RedisStore(url, key_prefix=prefix))


def test_two_prefixes_on_one_redis_never_meet_and_one_prefix_always_does(redis_server: RedisServer) -> None:
    # Just after Redis starts, a store that finds no stream waits a few seconds for re-seeds (RedisStore.settling):
    # start once that is over, so the checks below run while the answer still pauses.
    while int(redis_server.client().info("server")["uptime_in_seconds"]) < 4:
        time.sleep(0.1)
    first, other, same = app(redis_server.url, "shop:"), app(redis_server.url, "blog:"), app(redis_server.url, "shop:")
    try:
        # A chat answer that pauses mid-way: the chat's name points at a running stream meanwhile.
        model = ScriptedChatModel(tokens=4, ttft=0, interval=0, pause=4.0, pause_at=2)
        relay = first.stream(model, "hello", surface="ui", owner=OWNER, chat_id="c1")
        body: list[bytes] = []
        reader = threading.Thread(target=lambda: body.extend(Streams.body(relay, "ui")))
        reader.start()
        stream_id = relay.stream_id
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and first.store.named(f"chat:{OWNER}:c1") != stream_id:
            time.sleep(0.05)
        assert first.store.named(f"chat:{OWNER}:c1") == stream_id

        # Another prefix: no stream, no chat name.
        with pytest.raises(StreamNotFound):
            other.follow(stream_id, owner=OWNER)
        with pytest.raises(StreamNotFound):
            other.status(stream_id, owner=OWNER)
        assert other.store.named(f"chat:{OWNER}:c1") is None
        assert other.follow_chat("c1", owner=OWNER) is None

        # The negative control: the same prefix (another worker of the same app) sees both, while it runs.
        assert same.status(stream_id, owner=OWNER)["status"] == "running"
        assert same.store.named(f"chat:{OWNER}:c1") == stream_id
        chat = same.follow_chat("c1", owner=OWNER)
        assert chat is not None and chat.stream_id == stream_id
        replayed = b"".join(Streams.body(chat, "ui"))
        reader.join(10)
        assert not reader.is_alive()
        assert b'"type":"finish"' in b"".join(body) and b'"type":"finish"' in replayed

        # Finished streams stay apart too, and every key lives under one of the two prefixes.
        with pytest.raises(StreamNotFound):
            other.follow(stream_id, owner=OWNER)
        assert same.status(stream_id, owner=OWNER)["status"] == "completed"
        keys = [key.decode() for key in redis_server.client().keys("*")]
        assert keys and all(key.startswith("shop:") for key in keys), keys
        assert any(key == f"shop:stream:{stream_id}" for key in keys)

        # Cancels go out on the prefix's own channel: the other app hears none of them.
        heard: dict[str, list[str]] = {"other": [], "same": []}
        other.store.watch_cancels(heard["other"].append)
        same.store.watch_cancels(heard["same"].append)
        time.sleep(0.5)  # both subscribed
        first.store.announce_cancel("s_somebody")
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not heard["same"]:
            time.sleep(0.05)
        time.sleep(0.3)
        assert heard == {"other": [], "same": ["s_somebody"]}
    finally:
        for streams in (first, other, same):
            streams.store.close()
