import json
import multiprocessing
import socket
import sys
import uuid

import pytest
import redis

from core.records import Sequenced
from core.stream import MetricsStream, make_redis, metrics_key


def record(seq: int) -> Sequenced:
    return Sequenced(seq=seq, data={"run_id": str(uuid.uuid4()), "epoch": seq, "loss": 0.5})


def test_records_round_trip_under_their_sequence_numbers(stream: MetricsStream) -> None:
    job = uuid.uuid4()
    recs = [record(e) for e in range(1, 4)]
    for rec in recs:
        assert stream.append(job, [rec], live_ttl=60)
    page = stream.read_after(job, cursor=1, limit=10)
    assert page == recs[1:]
    assert stream.read_after(job, cursor=3, limit=10) == []


def test_a_gap_in_the_stream_stops_the_read_so_postgres_can_fill_it(stream: MetricsStream) -> None:
    job = uuid.uuid4()
    stream.append(job, [record(1)], live_ttl=60)
    stream.append(job, [record(3)], live_ttl=60)
    assert [p.seq for p in stream.read_after(job, cursor=0, limit=10)] == [1]
    assert stream.read_after(job, cursor=1, limit=10) == []
    assert not stream.append(job, [record(2)], live_ttl=60)  # behind the stream's last entry


def test_the_stream_is_bounded_and_expires_after_the_job(
    stream: MetricsStream, redis_client: redis.Redis
) -> None:
    small = MetricsStream(redis_client, maxlen=10, ttl_seconds=30)
    job = uuid.uuid4()
    for seq in range(1, 501):
        small.append(job, [record(seq)], live_ttl=3600)
    assert redis_client.xlen(metrics_key(job)) < 500
    assert small.read_after(job, cursor=0, limit=10) == []  # trimmed: the reader must use Postgres
    small.expire_after_job(job)
    assert 0 < redis_client.ttl(metrics_key(job)) <= 30


def test_cancel_flag(stream: MetricsStream) -> None:
    job = uuid.uuid4()
    assert not stream.cancel_requested(job)
    stream.request_cancel(job, ttl_seconds=60)
    assert stream.cancel_requested(job)


def test_a_batch_is_added_in_one_call_and_its_late_entries_are_counted(
    stream: MetricsStream,
) -> None:
    """Entries travel joined by newlines: each arrives whole, a string's own newline (escaped
    in JSON) and all, whether the writer sent its text or only its data."""
    job = uuid.uuid4()
    tricky = {"run_id": str(uuid.uuid4()), "epoch": 2, "note": "a\nb \u00e9 \\n"}
    texts = [None, json.dumps(tricky, ensure_ascii=False), None]
    batch = [
        Sequenced(seq=1, data=record(1).data),
        Sequenced(seq=2, data=tricky, text=texts[1]),
        Sequenced(seq=3, data=record(3).data),
    ]
    assert stream.append(job, batch, live_ttl=60)
    assert stream.read_after(job, cursor=0, limit=10) == batch
    assert not stream.append(job, [record(2), record(4), record(3), record(5)], live_ttl=60)
    assert [p.seq for p in stream.read_after(job, cursor=0, limit=10)] == [1, 2, 3, 4, 5]


def test_appends_survive_a_flushed_script_and_a_killed_connection(
    stream: MetricsStream, redis_client: redis.Redis
) -> None:
    """The appender's own connection: a script the server lost is sent whole, and a connection
    the server closed is made anew, each within the one call."""
    job = uuid.uuid4()
    assert stream.append(job, [record(1)], live_ttl=60)
    redis_client.script_flush()
    assert stream.append(job, [record(2)], live_ttl=60)
    own = stream._appender._connection
    assert redis_client.client_kill(_local_address(stream))
    assert stream.append(job, [record(3)], live_ttl=60)
    assert stream._appender._connection is not own
    assert [p.seq for p in stream.read_after(job, cursor=0, limit=10)] == [1, 2, 3]


def test_an_unreachable_redis_raises_for_the_caller_to_log() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: refused
        lost = MetricsStream(make_redis(f"redis://127.0.0.1:{port}/0"), maxlen=10, ttl_seconds=10)
        with pytest.raises(redis.RedisError):
            lost.append(uuid.uuid4(), [record(1)], live_ttl=60)


def _local_address(stream: MetricsStream) -> str:
    """host:port of the appender's end of its connection, as Redis's CLIENT LIST names it."""
    own = stream._appender._connection
    assert own is not None and own._sock is not None
    host, port = own._sock.getsockname()[:2]
    return f"{host}:{port}"


def _append_in_child(stream: MetricsStream, job: uuid.UUID, seq: int, parents: str) -> None:
    appended = stream.append(job, [record(seq)], live_ttl=60)
    sys.exit(0 if appended and _local_address(stream) != parents else 1)


def test_a_forked_child_appends_on_a_connection_of_its_own(stream: MetricsStream) -> None:
    """A worker's pool forks its processes: a child never writes on, or shuts, its parent's
    socket."""
    job = uuid.uuid4()
    assert stream.append(job, [record(1)], live_ttl=60)
    parents = stream._appender._connection
    child = multiprocessing.get_context("fork").Process(
        target=_append_in_child, args=(stream, job, 2, _local_address(stream))
    )
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    assert stream.append(job, [record(3)], live_ttl=60)
    assert stream._appender._connection is parents  # still open: the child did not shut it
    assert [p.seq for p in stream.read_after(job, cursor=0, limit=10)] == [1, 2, 3]


def test_appends_use_the_urls_password_and_database(private_redis: redis.Redis) -> None:
    port = private_redis.connection_pool.connection_kwargs["port"]
    guarded = MetricsStream(
        make_redis(f"redis://:pw@127.0.0.1:{port}/3"), maxlen=10, ttl_seconds=10
    )
    job = uuid.uuid4()
    assert guarded.append(job, [record(1)], live_ttl=60)
    assert private_redis.xlen(metrics_key(job)) == 1  # the client of database 3 sees it
