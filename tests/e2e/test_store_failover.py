"""No answer lost to the store: Redis restarted mid-stream (its data kept by an AOF, or lost), or its primary
killed under Sentinel, while 20 streams run on a real gunicorn (2 gevent workers). Every stream ends with
``end`` and its whole, exact text; half of them were cut and resumed on a second instance, so readers that
tail Redis (``RemoteLog``) live through the fault too. Negative controls: re-seeding off, the same fault
ends the streams with ``store_unavailable``."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.support.clients import StreamRecord, read_stream
from tests.support.redis_server import RedisServer, SentinelSetup
from tests.support.servers import ROOT, GunicornServer
from uncut.scripted import script_tokens

pytestmark = pytest.mark.e2e

STREAMS = 20
SCRIPTED = {
    "WEBAPP_PROVIDER": "scripted",
    "WEBAPP_SCRIPTED_TTFT_MS": "0",
    "WEBAPP_SCRIPTED_INTERVAL_MS": "100",
    "WEBAPP_HEARTBEAT_SECONDS": "1",
    "WEBAPP_MAX_STREAMS_PER_CLIENT": "100",
}


def prompt(i: int) -> str:
    return f"client {i} asks about answers that outlive their store"


def last_id(parts: list[StreamRecord]) -> str:
    return [e.id for part in parts for _, e in part.events if e.id][-1]


def one_client(i: int, producer: GunicornServer, reader: GunicornServer) -> list[StreamRecord]:
    """Odd clients read 3 tokens, cut, and resume on the other instance (a reader tailing Redis)."""
    if i % 2 == 0:
        return [read_stream("POST", producer.url + "/api/chat/events", json={"message": prompt(i)}, timeout=40)]
    parts = [
        read_stream(
            "POST",
            producer.url + "/api/chat/events",
            json={"message": prompt(i)},
            timeout=40,
            stop_when=lambda r: r.kinds.count("token") >= 3,
        )
    ]
    while parts[-1].terminal is None and parts[-1].status == 200 and len(parts) < 6:  # resume as EventSource would
        parts.append(read_stream("GET", reader.url + "/api/chat/events", headers={"Last-Event-ID": last_id(parts)}, timeout=40))
    return parts


def run_through(fault: Callable[[], None], producer: GunicornServer, reader: GunicornServer) -> tuple[list[list[StreamRecord]], float]:
    """Start every stream, cause the fault once all are under way, and collect every client's parts."""
    with ThreadPoolExecutor(STREAMS) as pool:
        clients = [pool.submit(one_client, i, producer, reader) for i in range(STREAMS)]
        time.sleep(2.0)  # every stream has a few tokens, and every odd one has moved to the reader instance
        fault_at = time.monotonic()
        fault()
        return [client.result(timeout=45) for client in clients], fault_at


def check_every_answer_is_whole(results: list[list[StreamRecord]], fault_at: float) -> None:
    for i, parts in enumerate(results):
        terminal = parts[-1].terminal
        assert terminal is not None and terminal.event == "end", (i, [p.kinds[-3:] for p in parts], terminal and terminal.data)
        assert "".join(p.text for p in parts) == "".join(script_tokens(prompt(i), None)), f"client {i}: not the exact answer"
        seqs = [int(e.id.split(":")[1]) for p in parts for _, e in p.events if e.id]
        assert seqs == list(range(len(seqs))), f"client {i}: a gap or a duplicate"
        times = [t for p in parts for t, e in p.events if e.event == "token"]
        assert times[0] < fault_at < times[-1], f"client {i}: the fault did not fall mid-stream"


def store_failure(last: StreamRecord) -> str | None:
    """The error a stream ended with: its error event, or a resume's ``503`` JSON error."""
    if last.terminal is not None and last.terminal.event == "error":
        return str(last.terminal.json()["error"]["type"])
    if last.status == 503:
        return str(json.loads(last.body)["error"]["type"])
    return None


def check_every_stream_failed_on_the_store(results: list[list[StreamRecord]]) -> None:
    types = [store_failure(parts[-1]) for parts in results]
    assert types == ["store_unavailable"] * STREAMS, types


def instances(gunicorn: Callable[..., GunicornServer], url: str, reseed: bool) -> tuple[GunicornServer, GunicornServer]:
    env = {**SCRIPTED, "WEBAPP_STREAM_STORE": url, "WEBAPP_STREAM_STORE_RESEED": "true" if reseed else "false"}
    return gunicorn(env={**env, "GUNICORN_WORKERS": "2"}, name="producer"), gunicorn(env=env, name="reader")


# -- a Redis restart ---------------------------------------------------------------------------------------


@pytest.fixture
def redis_factory(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[bool], RedisServer]:
    def start(appendonly: bool) -> RedisServer:
        """With ``appendonly``, the shipped conf/redis.conf (AOF everysec, noeviction); without, nothing kept."""
        server = RedisServer(tmp_path, config=ROOT / "conf" / "redis.conf") if appendonly else RedisServer(tmp_path)
        request.addfinalizer(server.stop)
        return server.start()

    return start


@pytest.mark.parametrize(
    ("appendonly", "reseed"),
    [(True, True), (False, True), (True, False)],
    ids=["data-kept", "data-lost", "negative-control-reseed-off"],
)
def test_every_stream_completes_through_a_redis_restart(
    appendonly: bool,
    reseed: bool,
    gunicorn: Callable[..., GunicornServer],
    redis_factory: Callable[[bool], RedisServer],
) -> None:
    redis_server = redis_factory(appendonly)
    producer, reader = instances(gunicorn, redis_server.url, reseed)
    results, fault_at = run_through(lambda: redis_server.restart(down_seconds=1.0), producer, reader)
    if not reseed:
        check_every_stream_failed_on_the_store(results)
        return
    check_every_answer_is_whole(results, fault_at)
    if appendonly:
        assert "DB loaded from append only file" in redis_server.log(), "the restart kept the data"
    else:
        assert "re-seeded" in producer.log(), "the producers wrote their streams back"


# -- a Sentinel failover -----------------------------------------------------------------------------------


@pytest.fixture
def sentinel(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SentinelSetup]:
    setup = SentinelSetup(tmp_path)
    request.addfinalizer(setup.stop)
    yield setup.start()


@pytest.mark.parametrize("reseed", [True, False], ids=["reseeded", "negative-control-reseed-off"])
def test_every_stream_completes_through_a_sentinel_failover(
    reseed: bool,
    gunicorn: Callable[..., GunicornServer],
    sentinel: SentinelSetup,
) -> None:
    producer, reader = instances(gunicorn, sentinel.url, reseed)
    took: list[float] = []

    def kill_the_primary() -> None:
        sentinel.kill_primary()  # kill -9
        took.append(sentinel.wait_for_failover())

    results, fault_at = run_through(kill_the_primary, producer, reader)
    print(f"Sentinel promoted the replica {took[0]:.1f}s after the primary was killed")
    assert sentinel.master_port() == sentinel.replica.port
    if not reseed:
        check_every_stream_failed_on_the_store(results)
        return
    check_every_answer_is_whole(results, fault_at)


# -- a producer killed with kill -9 ------------------------------------------------------------------------


def test_a_killed_producer_ends_its_own_streams_with_producer_lost_and_touches_nothing_else(
    gunicorn: Callable[..., GunicornServer],
    redis_factory: Callable[[bool], RedisServer],
) -> None:
    """Re-seeding is on: a lease that runs out with Redis healthy still means the producer is gone."""
    import psutil

    redis_server = redis_factory(True)
    env = {**SCRIPTED, "WEBAPP_SCRIPTED_INTERVAL_MS": "200", "WEBAPP_STREAM_STORE": redis_server.url}
    doomed, survivor = gunicorn(env=env, name="doomed"), gunicorn(env={**env, "GUNICORN_WORKERS": "2"}, name="survivor")
    assert doomed.process is not None
    (worker,) = psutil.Process(doomed.process.pid).children()
    killed: list[float] = []
    with ThreadPoolExecutor(STREAMS) as pool:
        # Odd clients: produced by the doomed instance, resumed on the survivor. Even: produced and read on the survivor.
        clients = [
            pool.submit(one_client, i, doomed, survivor) if i % 2 else pool.submit(one_client, i, survivor, survivor)
            for i in range(STREAMS)
        ]
        time.sleep(2.0)
        killed.append(time.monotonic())
        worker.kill()  # SIGKILL: no drain, no terminal event
        results = [client.result(timeout=45) for client in clients]
    lost_after = []
    for i, parts in enumerate(results):
        if i % 2:  # the doomed instance's streams
            assert store_failure(parts[-1]) == "producer_lost", (i, parts[-1].kinds[-3:])
            lost_after.append((parts[-1].ended or 0) - killed[0])
        else:
            terminal = parts[-1].terminal
            assert terminal is not None and terminal.event == "end", (i, terminal and terminal.data)
            assert "".join(p.text for p in parts) == "".join(script_tokens(prompt(i), None))
            assert (parts[-1].ended or 0) > killed[0] + 3, "it was still running while the lost streams were ended"
    print(
        f"producer_lost reached the readers {min(lost_after):.1f}-{max(lost_after):.1f}s after kill -9; "
        f"the survivor's {STREAMS // 2} streams all ended whole"
    )
    assert max(lost_after) < 11
