import uuid
from datetime import UTC, datetime

import redis

from core.records import EpochRecord
from core.stream import MetricsStream, metrics_key


def record(epoch: int) -> EpochRecord:
    return EpochRecord(
        run_id=uuid.uuid4(),
        epoch=epoch,
        loss=0.5,
        accuracy=0.9,
        val_loss=0.6,
        val_accuracy=0.8,
        learning_rate=0.001,
        epoch_seconds=0.2,
        examples_seen=100,
        time=datetime.now(UTC),
    )


def test_records_round_trip_under_their_sequence_numbers(stream: MetricsStream) -> None:
    job = uuid.uuid4()
    recs = [record(e) for e in range(1, 4)]
    for seq, rec in enumerate(recs, start=1):
        assert stream.append(job, seq, rec, live_ttl=60)
    page = stream.read_after(job, cursor=1, limit=10)
    assert [p.seq for p in page] == [2, 3] and page[0].record == recs[1]
    assert stream.read_after(job, cursor=3, limit=10) == []


def test_a_gap_in_the_stream_stops_the_read_so_postgres_can_fill_it(stream: MetricsStream) -> None:
    job = uuid.uuid4()
    stream.append(job, 1, record(1), live_ttl=60)
    stream.append(job, 3, record(3), live_ttl=60)
    assert [p.seq for p in stream.read_after(job, cursor=0, limit=10)] == [1]
    assert stream.read_after(job, cursor=1, limit=10) == []
    assert not stream.append(job, 2, record(2), live_ttl=60)  # behind the stream's last entry


def test_the_stream_is_bounded_and_expires_after_the_job(
    stream: MetricsStream, redis_client: redis.Redis
) -> None:
    small = MetricsStream(redis_client, maxlen=10, ttl_seconds=30)
    job = uuid.uuid4()
    for seq in range(1, 501):
        small.append(job, seq, record(seq), live_ttl=3600)
    assert redis_client.xlen(metrics_key(job)) < 500
    assert small.read_after(job, cursor=0, limit=10) == []  # trimmed: the reader must use Postgres
    small.expire_after_job(job)
    assert 0 < redis_client.ttl(metrics_key(job)) <= 30


def test_cancel_flag(stream: MetricsStream) -> None:
    job = uuid.uuid4()
    assert not stream.cancel_requested(job)
    stream.request_cancel(job, ttl_seconds=60)
    assert stream.cancel_requested(job)
