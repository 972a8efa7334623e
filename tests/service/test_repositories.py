"""Repositories against real Postgres: jobs with their runs and messages, claims, records
numbered without gaps and stored once, the one rule of who sees what."""

import threading
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from core.db import one_statement, transaction
from core.keys import Principal
from core.kinds.race.records import RaceRecord
from core.kinds.train.records import TrainRecord
from core.kinds.train.spec import TrainSpec
from core.models import JobStatus, RunStatus
from core.repositories import JobRepository, RecordRepository, RunRepository

QUEUE = "optarena.test.repositories"


def make_job(
    sessions: sessionmaker[Session], optimizers: list[str] | None = None, *, owner: str = "tester"
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    spec = TrainSpec.model_validate({"optimizers": optimizers or ["sgd", "adam"]})
    with transaction(sessions) as session:
        job = JobRepository(session).create(
            name="t",
            kind="train",
            spec=spec.model_dump(mode="json"),
            runs=spec.expand(),
            queue=QUEUE,
            owner=owner,
        )
        runs = [r.id for r in RunRepository(session).for_job(job.id)]
        return job.id, runs


def record(run_id: uuid.UUID, epoch: int, loss: float = 1.0) -> TrainRecord:
    return TrainRecord(
        run_id=run_id,
        epoch=epoch,
        loss=loss,
        accuracy=0.5,
        val_loss=None,
        val_accuracy=None,
        learning_rate=0.01,
        epoch_seconds=0.1,
        examples_seen=epoch * 10,
        steps=epoch,
        time=datetime.now(UTC),
    )


def test_a_job_is_stored_with_its_runs_and_a_message_per_run_in_one_transaction(
    sessions: sessionmaker[Session],
) -> None:
    _, runs = make_job(sessions)
    with sessions() as session:
        messages = session.execute(text("SELECT run_id, task, args, queue FROM outbox")).all()
    assert sorted(m.run_id for m in messages) == sorted(runs)
    assert {(m.task, m.queue) for m in messages} == {("train_run", QUEUE)}
    assert sorted(m.args[0] for m in messages) == sorted(map(str, runs))


def test_a_run_is_claimed_once(sessions: sessionmaker[Session]) -> None:
    _, (run_id, _) = make_job(sessions)
    with transaction(sessions) as session:
        first = RunRepository(session).claim(run_id, worker="a")
        assert first is not None and first.attempt == 1 and first.status == RunStatus.RUNNING
    with transaction(sessions) as session:
        assert RunRepository(session).claim(run_id, worker="b") is None


def test_records_get_gapless_sequence_numbers_and_a_retried_position_is_stored_once(
    sessions: sessionmaker[Session],
) -> None:
    job_id, (a, b) = make_job(sessions)
    seqs = []
    for rec in [record(a, 1), record(b, 1), record(a, 1, loss=9.0), record(a, 2)]:
        with transaction(sessions) as session:
            stored = RecordRepository(session).add_many(job_id=job_id, records=[rec])
            seqs.append(stored[0].seq if stored else None)
    assert seqs == [1, 2, None, 3]
    with transaction(sessions) as session:
        data = RecordRepository(session).for_jobs([job_id])
        assert [(d["epoch"], d["loss"]) for d in data if d["run_id"] == str(a)] == [
            (1, 1.0),
            (2, 1.0),
        ]
        page = RecordRepository(session).after(job_id, cursor=1, limit=10)
        assert [p.seq for p in page] == [2, 3] and page[0].of(TrainRecord) == record(
            b, 1
        ).model_copy(update={"time": page[0].of(TrainRecord).time})
        job = JobRepository(session).get(job_id)
        assert job is not None and job.metrics_seq == 3


def test_a_batch_takes_numbers_in_its_order_skipping_what_is_stored_or_repeated(
    sessions: sessionmaker[Session],
) -> None:
    job_id, (a, b) = make_job(sessions)
    with one_statement(sessions) as session:
        RecordRepository(session).add_many(job_id=job_id, records=[record(a, 2)])
    batch = [record(b, 1), record(a, 2, loss=7.0), record(a, 3), record(b, 1, loss=9.0)]
    with one_statement(sessions) as session:
        stored = RecordRepository(session).add_many(job_id=job_id, records=batch)
    assert [(s.seq, s.data["run_id"], s.data["epoch"]) for s in stored] == [
        (2, str(b), 1),
        (3, str(a), 3),
    ]
    assert stored[0].data["loss"] == 1.0  # the first of a repeated position wins
    with pytest.raises(LookupError, match="does not exist"), one_statement(sessions) as session:
        RecordRepository(session).add_many(job_id=uuid.uuid4(), records=[record(a, 4)])


def test_writers_racing_on_one_position_store_it_once_and_leave_no_gap(
    sessions: sessionmaker[Session],
) -> None:
    job_id, (a, b) = make_job(sessions)
    barrier = threading.Barrier(8)
    numbers: list[int] = []

    def write(i: int) -> None:
        barrier.wait()
        for epoch in range(1, 21):
            # Every writer repeats run a's epochs (a retried attempt); b's are its own.
            records = [record(a, epoch), record(b, 100 * i + epoch)]
            with one_statement(sessions) as session:
                numbers.extend(
                    s.seq
                    for s in RecordRepository(session).add_many(job_id=job_id, records=records)
                )

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(numbers) == list(range(1, 20 + 8 * 20 + 1))
    with sessions() as session:
        data = RecordRepository(session).for_jobs([job_id])
    assert sorted(d["epoch"] for d in data if d["run_id"] == str(a)) == list(range(1, 21))


def test_single_record_writers_racing_on_one_position_store_it_once_and_leave_no_gap(
    sessions: sessionmaker[Session],
) -> None:
    """The epoch-by-epoch write (one record a call, optarena_add_record) keeps the batch's
    rules: every writer repeats run a's epochs, each stored once; no number is skipped."""
    job_id, (a, b) = make_job(sessions)
    barrier = threading.Barrier(8)
    numbers: list[int] = []
    skipped: list[int] = []

    def write(i: int) -> None:
        barrier.wait()
        for epoch in range(1, 21):
            for rec in (record(a, epoch), record(b, 100 * i + epoch)):
                with one_statement(sessions) as session:
                    stored = RecordRepository(session).add_many(job_id=job_id, records=[rec])
                numbers.extend(s.seq for s in stored)
                skipped.extend([] if stored else [rec.position])

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(numbers) == list(range(1, 20 + 8 * 20 + 1))
    assert len(skipped) == 7 * 20  # run a's epochs: one writer stores each, seven skip it
    with sessions() as session:
        data = RecordRepository(session).for_jobs([job_id])
        job = JobRepository(session).get(job_id)
    assert sorted(d["epoch"] for d in data if d["run_id"] == str(a)) == list(range(1, 21))
    assert job is not None and job.metrics_seq == 180
    with pytest.raises(LookupError, match="does not exist"), one_statement(sessions) as session:
        RecordRepository(session).add_many(job_id=uuid.uuid4(), records=[record(a, 4)])


def test_any_kinds_records_share_the_stored_shape(sessions: sessionmaker[Session]) -> None:
    job_id, (a, _) = make_job(sessions)
    step = RaceRecord(
        run_id=a,
        step=7,
        x=1.0,
        y=float("inf"),
        f=2.0,
        learning_rate=0.1,
        seconds=0.01,
        time=datetime.now(UTC),
    )
    with transaction(sessions) as session:
        [stored] = RecordRepository(session).add_many(job_id=job_id, records=[step])
    assert stored.data["step"] == 7 and stored.data["y"] is None  # JSON has no infinity
    with sessions() as session:
        position = session.execute(text("SELECT position FROM records")).scalar_one()
    assert position == 7


def test_job_status_follows_its_runs(sessions: sessionmaker[Session]) -> None:
    job_id, (a, b) = make_job(sessions)
    with transaction(sessions) as session:
        RunRepository(session).claim(a, worker="w")
        assert JobRepository(session).settle(job_id).status == JobStatus.RUNNING  # type: ignore[union-attr]
        RunRepository(session).finish(a, status=RunStatus.DIVERGED, diverged_at=2)
        RunRepository(session).claim(b, worker="w")
        RunRepository(session).finish(b, status=RunStatus.SUCCEEDED)
        job = JobRepository(session).settle(job_id)
        assert job is not None and job.status == JobStatus.SUCCEEDED and job.finished_at is not None


def test_cancel_cancels_queued_runs_only(sessions: sessionmaker[Session]) -> None:
    job_id, (a, b) = make_job(sessions)
    with transaction(sessions) as session:
        RunRepository(session).claim(a, worker="w")
        job = JobRepository(session).get(job_id)
        assert job is not None
        assert JobRepository(session).request_cancel(job) == [b]
        assert JobRepository(session).settle(job_id).status == JobStatus.RUNNING  # type: ignore[union-attr]
        RunRepository(session).finish(a, status=RunStatus.CANCELLED)
        assert JobRepository(session).settle(job_id).status == JobStatus.CANCELLED  # type: ignore[union-attr]


def test_who_sees_what_is_one_rule_for_jobs_pages_and_runs(
    sessions: sessionmaker[Session],
) -> None:
    mine, my_runs = make_job(sessions, owner="tester")
    theirs, their_runs = make_job(sessions, owner="other")
    tester = Principal(uuid.uuid4(), "tester", admin=False)
    admin = Principal(uuid.uuid4(), "root", admin=True)
    with sessions() as session:
        jobs, runs = JobRepository(session), RunRepository(session)
        assert jobs.visible(mine, tester) is not None and jobs.visible(theirs, tester) is None
        assert jobs.visible(theirs, admin) is not None
        assert [j.id for j in jobs.page(tester, limit=10, offset=0)[0]] == [mine]
        assert jobs.page(admin, limit=10, offset=0)[1] == 2
        assert {r.id for r in runs.visible([*my_runs, *their_runs], tester)} == set(my_runs)


def submit_at_once(
    sessions: sessionmaker[Session], count: int, *, key: str | None, max_active: int
) -> list[str]:
    """`count` submissions of one owner (two runs each) in as many transactions at once; each
    one's outcome."""
    spec = TrainSpec.model_validate({"optimizers": ["sgd", "adam"]})
    outcomes: list[str] = []
    start = threading.Barrier(count)

    def one() -> None:
        start.wait()
        with transaction(sessions) as session:
            done = JobRepository(session).submit(
                job_id=uuid.uuid4(),
                name="t",
                kind="train",
                spec=spec.model_dump(mode="json"),
                runs=[(uuid.uuid4(), plan) for plan in spec.expand()],
                queue=QUEUE,
                owner="racer",
                idempotency_key=key,
                request_sha256="same",
                max_active_runs=max_active,
            )
            outcomes.append(done.outcome)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_submissions_at_once_under_one_key_make_one_job_and_never_pass_the_limit(
    sessions: sessionmaker[Session],
) -> None:
    outcomes = submit_at_once(sessions, 8, key="retry", max_active=10**6)
    assert sorted(outcomes) == ["created"] + ["earlier"] * 7
    with sessions() as session:
        assert session.execute(text("SELECT count(*) FROM jobs")).scalar_one() == 1
    # 8 more of 2 runs each with room for 5 active runs (2 already): one more fits
    outcomes = submit_at_once(sessions, 8, key=None, max_active=5)
    assert sorted(outcomes) == ["created"] + ["limit"] * 7
    with sessions() as session:
        runs = session.execute(text("SELECT count(*), count(DISTINCT job_id) FROM runs")).one()
        messages = session.execute(text("SELECT count(*) FROM outbox")).scalar_one()
    assert tuple(runs) == (4, 2) and messages == 4
