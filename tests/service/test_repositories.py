import uuid
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from core.db import transaction
from core.expand import expand_job
from core.models import JobStatus, RunStatus
from core.records import EpochRecord
from core.repositories import EpochRepository, JobRepository, RunRepository
from core.spec import JobSpec


def make_job(
    sessions: sessionmaker[Session], optimizers: list[str] | None = None
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    spec = JobSpec.model_validate({"optimizers": optimizers or ["sgd", "adam"]})
    with transaction(sessions) as session:
        job, runs = JobRepository(session).create(
            name="t", spec=spec.model_dump(mode="json"), runs=expand_job(spec)
        )
        assert runs == [r.id for r in RunRepository(session).for_job(job.id)]
        return job.id, runs


def record(run_id: uuid.UUID, epoch: int, loss: float = 1.0) -> EpochRecord:
    return EpochRecord(
        run_id=run_id,
        epoch=epoch,
        loss=loss,
        accuracy=0.5,
        val_loss=None,
        val_accuracy=None,
        learning_rate=0.01,
        epoch_seconds=0.1,
        examples_seen=epoch * 10,
        time=datetime.now(UTC),
    )


def test_a_run_is_claimed_once(sessions: sessionmaker[Session]) -> None:
    _, (run_id, _) = make_job(sessions)
    with transaction(sessions) as session:
        first = RunRepository(session).claim(run_id, worker="a")
        assert first is not None and first.attempt == 1 and first.status == RunStatus.RUNNING
    with transaction(sessions) as session:
        assert RunRepository(session).claim(run_id, worker="b") is None


def test_epoch_records_get_gapless_sequence_numbers_and_a_retried_epoch_is_stored_once(
    sessions: sessionmaker[Session],
) -> None:
    job_id, (a, b) = make_job(sessions)
    seqs = []
    for rec in [record(a, 1), record(b, 1), record(a, 1, loss=9.0), record(a, 2)]:
        with transaction(sessions) as session:
            seqs.append(EpochRepository(session).add(job_id=job_id, record=rec))
    assert seqs == [1, 2, None, 3]
    with transaction(sessions) as session:
        stored = EpochRepository(session).for_run(a)
        assert [(r.epoch, r.loss) for r in stored] == [(1, 1.0), (2, 1.0)]
        page = EpochRepository(session).after(job_id, cursor=1, limit=10)
        assert [p.seq for p in page] == [2, 3]
        job = JobRepository(session).get(job_id)
        assert job is not None and job.metrics_seq == 3


def test_job_status_follows_its_runs(sessions: sessionmaker[Session]) -> None:
    job_id, (a, b) = make_job(sessions)
    with transaction(sessions) as session:
        RunRepository(session).claim(a, worker="w")
        assert JobRepository(session).settle(job_id).status == JobStatus.RUNNING  # type: ignore[union-attr]
        RunRepository(session).finish(a, status=RunStatus.DIVERGED, diverged_epoch=2)
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
