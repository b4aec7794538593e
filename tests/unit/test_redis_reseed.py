"""The re-seed logic against a real redis-server (no gunicorn): a producer's log survives Redis losing
all or part of it, readers elsewhere see no gap and no duplicate, and with re-seeding off it fails at once."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.redis_server import RedisServer
from uncut.eventlog import Event, MemoryEventLog, StoreUnavailable
from uncut.redis_store import MirroredLog, RedisStore, RemoteLog


@pytest.fixture
def redis_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    request.addfinalizer(server.stop)
    yield server.start()


def remote(store: RedisStore, stream_id: str) -> list[tuple[int, str, dict]]:
    return [
        (int(entry_id.split(b"-")[0]), fields[b"k"].decode(), json.loads(fields[b"d"]))
        for entry_id, fields in store.client.xrange(store.keys(stream_id)[0])
    ]


def local(log: MemoryEventLog) -> list[tuple[int, str, dict]]:
    return [(e.seq, e.kind, e.data) for e in log.read_after(-1, 0)]  # type: ignore[misc]


def producing(store: RedisStore, stream_id: str, tokens: int) -> MirroredLog:
    log = store.create(stream_id, owner="key-a")
    assert isinstance(log, MirroredLog)
    log.deadline = time.monotonic() + 60
    log.append("start", {"stream_id": stream_id})
    for i in range(tokens):
        log.append("token", {"text": f"t{i} "})
    return log


def test_a_restart_that_lost_everything_is_re_seeded_with_the_same_ids_meta_and_lease(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url, retry_seconds=5)
    try:
        log = producing(store, "s_lost", 5)
        redis_server.restart()
        assert store.client.exists(store.keys("s_lost")[0]) == 0, "the restart lost the stream"
        log.append("token", {"text": "t5 "})
        log.finish("end", {"finish_reason": "stop"})
        assert remote(store, "s_lost") == local(log) and [seq for seq, _, _ in local(log)] == list(range(8))
        meta = store.client.hgetall(store.keys("s_lost")[1])
        assert meta[b"seq"] == b"8" and meta[b"owner"] == b"key-a" and meta[b"done"] == b"1"
        assert abs(int(meta[b"deadline"]) / 1000 - time.time() - 60) < 5
        assert store.reseeds == 6
    finally:
        store.close()


def test_negative_control_with_re_seeding_off_the_same_restart_ends_the_stream(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url, reseed=False)
    try:
        log = producing(store, "s_off", 5)
        redis_server.restart()
        with pytest.raises(StoreUnavailable, match="gone from Redis"):
            log.append("token", {"text": "t5 "})
        redis_server.stop()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            log.append("token", {"text": "t5 "})
        assert time.monotonic() - started < 1, "no retry: it fails at once"
    finally:
        store.close()


def test_a_lost_tail_is_written_back_before_the_next_event(redis_server: RedisServer) -> None:
    """What an async replica promoted by Sentinel may lack: the last events its primary had acknowledged."""
    store = RedisStore(redis_server.url, retry_seconds=5)
    try:
        log = producing(store, "s_tail", 6)
        stream_key, meta_key = store.keys("s_tail")
        kept = store.client.xrange(stream_key, count=5)  # as a replica that never saw the last two has it
        store.client.delete(stream_key)
        for entry_id, fields in kept:
            store.client.xadd(stream_key, fields, id=entry_id)
        store.client.hset(meta_key, "seq", 5)
        log.append("token", {"text": "t6 "})
        assert remote(store, "s_tail") == local(log) and store.reseeds == 2
    finally:
        store.close()


def test_a_long_log_goes_back_in_batches_in_order(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url, retry_seconds=5)
    try:
        log = producing(store, "s_long", 1300)
        store.client.flushall()
        log.append("token", {"text": "last"})
        assert remote(store, "s_long") == local(log) and len(local(log)) == 1302
    finally:
        store.close()


def test_a_diverged_stream_fails_at_once_instead_of_retrying(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url, retry_seconds=5)
    try:
        log = producing(store, "s_div", 2)
        store.client.xadd(store.keys("s_div")[0], {"k": "token", "d": '{"text":"not mine"}'}, id="3-1")
        store.client.xadd(store.keys("s_div")[0], {"k": "token", "d": '{"text":"not mine"}'}, id="4-1")
        store.client.hset(store.keys("s_div")[1], "seq", 5)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="holds 5 events"):
            log.append("token", {"text": "t2 "})
        assert time.monotonic() - started < 1
    finally:
        store.close()


def test_redis_away_past_the_bound_ends_the_append_after_the_bound(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url, retry_seconds=1.0)
    try:
        log = producing(store, "s_away", 1)
        redis_server.stop()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            log.append("token", {"text": "x"})
        assert 0.9 < time.monotonic() - started < 3
    finally:
        store.close()


def test_the_keeper_restores_a_paused_stream_a_finished_one_and_their_names(redis_server: RedisServer) -> None:
    """No append comes during a model pause: the keeper sees the new server and re-seeds on its own."""
    store = RedisStore(redis_server.url, retry_seconds=5)
    try:
        paused = producing(store, "s_paused", 3)
        done = producing(store, "s_done", 2)
        done.finish("end", {"finish_reason": "stop"})
        store.name_stream("chat:-:c1", "s_paused")
        time.sleep(2)  # a keeper round has seen this server
        redis_server.restart()
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline and not store.client.exists(store.lease_key("s_paused")):
            time.sleep(0.1)
        assert remote(store, "s_paused") == local(paused) and remote(store, "s_done") == local(done)
        assert store.client.exists(store.lease_key("s_paused")) and not store.client.exists(store.lease_key("s_done"))
        assert store.client.get(store.name_key("chat:-:c1")) == b"s_paused"
        assert 0 < store.client.pttl(store.keys("s_done")[0]) <= 300_000
    finally:
        store.close()


def test_a_reader_elsewhere_reads_through_the_restart_with_no_gap_and_no_duplicate(redis_server: RedisServer) -> None:
    producer, reader_store = RedisStore(redis_server.url, retry_seconds=8), RedisStore(redis_server.url, retry_seconds=8)
    try:
        log = producing(producer, "s_read", 2)
        reader = reader_store.open("s_read")
        assert isinstance(reader, RemoteLog)
        got: list[Event] = []

        def read() -> None:
            seq, until = -1, time.monotonic() + 20
            while time.monotonic() < until:
                events = reader.read_after(seq, 1.0)
                got.extend(events)
                if events and events[-1].seq is not None:
                    seq = events[-1].seq
                if events and events[-1].terminal:
                    return

        thread = threading.Thread(target=read)
        thread.start()
        for i in range(2, 12):
            if i == 6:
                redis_server.restart(down_seconds=1.0)
            log.append("token", {"text": f"t{i} "})
            time.sleep(0.05)
        log.finish("end", {"finish_reason": "stop"})
        thread.join(25)
        assert [(e.seq, e.kind, e.data) for e in got] == local(log), "the whole stream, each event once"
    finally:
        producer.close()
        reader_store.close()


def test_negative_control_a_reader_with_re_seeding_off_gets_store_unavailable(redis_server: RedisServer) -> None:
    producer, reader_store = RedisStore(redis_server.url), RedisStore(redis_server.url, reseed=False)
    try:
        producing(producer, "s_read_off", 2)
        reader = reader_store.open("s_read_off")
        assert reader is not None
        assert [e.seq for e in reader.read_after(-1, 1.0)] == [0, 1, 2]
        redis_server.stop()
        assert reader.read_after(2, 1.0)[-1].data["error"]["type"] == "store_unavailable"
    finally:
        producer.close()
        reader_store.close()


def test_a_cluster_mode_server_is_refused_with_a_clear_message(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    import subprocess

    server = RedisServer(tmp_path, name="cluster")
    request.addfinalizer(server.stop)
    command = [
        server.executable,
        "--port",
        str(server.port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        str(server.workdir / "nodes.conf"),
        "--dir",
        str(server.workdir),
    ]
    server.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            server.client().ping()
            break
        except Exception:  # noqa: BLE001
            time.sleep(0.05)
    store = RedisStore(server.url)
    with pytest.raises(StoreUnavailable, match="cluster-mode server: Redis Cluster is not supported"):
        store.ping()


def test_the_shipped_redis_conf_keeps_an_aof_and_never_evicts(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from tests.support.servers import ROOT

    server = RedisServer(tmp_path, config=ROOT / "conf" / "redis.conf")
    request.addfinalizer(server.stop)
    client = server.start().client()
    settings = {key: client.config_get(key)[key] for key in ("appendonly", "appendfsync", "maxmemory-policy", "save")}
    assert settings == {"appendonly": "yes", "appendfsync": "everysec", "maxmemory-policy": "noeviction", "save": ""}
    client.set("kept", 1)
    server.restart()
    assert server.client().get("kept") == b"1", "a kill -9 and restart keep what the AOF was given"


def test_sentinels_that_do_not_answer_stop_start_up_with_the_url_masked() -> None:
    from tests.support.servers import free_port

    store = RedisStore(f"redis+sentinel://:hunter2-secret@127.0.0.1:{free_port()}/mymaster/0")
    with pytest.raises(StoreUnavailable) as caught:
        store.ping()
    assert "cannot reach Redis at redis+sentinel://:***@127.0.0.1:" in str(caught.value) and "hunter2" not in str(caught.value)


def test_a_run_is_not_abandoned_while_redis_cannot_say_whether_anyone_reads_it(redis_server: RedisServer) -> None:
    """Readers cannot renew their presence while Redis is away or just back: ``remote_reader`` says yes then."""
    store = RedisStore(redis_server.url, retry_seconds=1)
    deadline = time.monotonic() + 8
    while store.settling() and time.monotonic() < deadline:  # a Redis up for seconds only is "just back"
        time.sleep(0.2)
    assert store.remote_reader("s_0000000000000000") is False  # negative control: Redis answers, nobody reads
    redis_server.stop()
    assert store.remote_reader("s_0000000000000000") is True  # cannot ask: not abandoned
    redis_server.start()
    assert store.remote_reader("s_0000000000000000") is True  # just back: presence keys may be missing
    store.close()
