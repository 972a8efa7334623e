import json
import uuid

import redis

from core.records import Sequenced
from core.stream import MetricsStream, metrics_key


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
