"""Every query the service makes. Repositories never commit: the caller owns the transaction."""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, selectinload

from core.expand import RunSpec
from core.models import FINISHED_JOB, FINISHED_RUN, EpochMetric, Job, JobStatus, Run, RunStatus
from core.records import EpochRecord, SequencedRecord


def _now() -> datetime:
    return datetime.now(UTC)


class JobRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def create(
        self, *, name: str, spec: dict[str, Any], runs: Sequence[RunSpec]
    ) -> tuple[Job, list[uuid.UUID]]:
        """A queued job and its queued runs; the job and the runs' ids in sweep order."""
        job = Job(id=uuid.uuid4(), name=name, spec=spec, status=JobStatus.QUEUED)
        self.session.add(job)
        self.session.flush()
        rows = [
            Run(
                id=uuid.uuid4(),
                job_id=job.id,
                index=r.index,
                arm=r.arm,
                label=r.label,
                optimizer=r.optimizer,
                batch_size=r.batch_size,
                epochs=r.epochs,
                seed=r.seed,
                status=RunStatus.QUEUED,
            )
            for r in runs
        ]
        self.session.add_all(rows)
        self.session.flush()
        return job, [row.id for row in rows]

    def get(self, job_id: uuid.UUID, *, with_runs: bool = False, lock: bool = False) -> Job | None:
        query = select(Job).where(Job.id == job_id)
        if with_runs:
            query = query.options(selectinload(Job.runs))
        if lock:
            query = query.with_for_update()
        return self.session.scalars(query).one_or_none()

    def page(self, *, limit: int, offset: int) -> tuple[list[Job], int]:
        """Newest first, with the total count."""
        jobs = self.session.scalars(
            select(Job)
            .options(selectinload(Job.runs))
            .order_by(Job.created_at.desc(), Job.id.desc())
            .limit(limit)
            .offset(offset)
        ).all()
        total = self.session.scalar(select(func.count()).select_from(Job)) or 0
        return list(jobs), total

    def request_cancel(self, job: Job) -> list[uuid.UUID]:
        """Mark the job cancelled-on-request and cancel its queued runs; their ids."""
        now = _now()
        if job.cancel_requested_at is None:
            job.cancel_requested_at = now
        cancelled = self.session.scalars(
            update(Run)
            .where(Run.job_id == job.id, Run.status == RunStatus.QUEUED)
            .values(
                status=RunStatus.CANCELLED, finished_at=now, error="cancelled before it started"
            )
            .returning(Run.id)
        ).all()
        return list(cancelled)

    def settle(self, job_id: uuid.UUID) -> Job | None:
        """Derive the job's status from its runs (under the job's row lock)."""
        job = self.get(job_id, lock=True)
        if job is None:
            return None
        statuses = list(self.session.scalars(select(Run.status).where(Run.job_id == job_id)))
        job.status = job_status_of(statuses, cancel_requested=job.cancel_requested_at is not None)
        if job.status in FINISHED_JOB:
            job.finished_at = job.finished_at or _now()
        return job


def job_status_of(statuses: Sequence[RunStatus], *, cancel_requested: bool) -> JobStatus:
    """A job runs while any run is unfinished; then it is cancelled, failed or succeeded.

    A diverged run is a finding of the comparison, not a failure of the job.
    """
    if any(s not in FINISHED_RUN for s in statuses):
        started = any(s != RunStatus.QUEUED for s in statuses)
        return JobStatus.RUNNING if started else JobStatus.QUEUED
    if cancel_requested:
        return JobStatus.CANCELLED
    if any(s == RunStatus.FAILED for s in statuses):
        return JobStatus.FAILED
    return JobStatus.SUCCEEDED


class RunRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, run_id: uuid.UUID) -> Run | None:
        return self.session.get(Run, run_id)

    def for_job(self, job_id: uuid.UUID) -> list[Run]:
        return list(
            self.session.scalars(select(Run).where(Run.job_id == job_id).order_by(Run.index))
        )

    def claim(self, run_id: uuid.UUID, *, worker: str) -> Run | None:
        """Queued to running in one statement, so a duplicate delivery cannot train it twice."""
        return self.session.scalars(
            update(Run)
            .where(Run.id == run_id, Run.status == RunStatus.QUEUED)
            .values(
                status=RunStatus.RUNNING,
                attempt=Run.attempt + 1,
                started_at=_now(),
                worker=worker,
                error=None,
            )
            .returning(Run)
        ).one_or_none()

    def record_start(
        self, run_id: uuid.UUID, *, initial_weights_sha256: str, environment: dict[str, Any]
    ) -> None:
        self.session.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(initial_weights_sha256=initial_weights_sha256, environment=environment)
        )

    def finish(
        self,
        run_id: uuid.UUID,
        *,
        status: RunStatus,
        summary: dict[str, Any] | None = None,
        error: str | None = None,
        diverged_epoch: int | None = None,
    ) -> None:
        self.session.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(
                status=status,
                summary=summary,
                error=error,
                diverged_epoch=diverged_epoch,
                finished_at=_now(),
            )
        )

    def fail_unfinished(self, job_id: uuid.UUID, *, reason: str) -> None:
        self.session.execute(
            update(Run)
            .where(Run.job_id == job_id, Run.status == RunStatus.QUEUED)
            .values(status=RunStatus.FAILED, error=reason, finished_at=_now())
        )


class EpochRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, *, job_id: uuid.UUID, record: EpochRecord) -> int | None:
        """Store a record under the job's next sequence number; None if the epoch is stored."""
        stored = self.add_many(job_id=job_id, records=[record])
        return stored[0].seq if stored else None

    def add_many(
        self, *, job_id: uuid.UUID, records: Sequence[EpochRecord]
    ) -> list[SequencedRecord]:
        """Store records under the job's next sequence numbers; those stored, numbered.

        The job row is locked first, so numbers are committed in order and without gaps: a
        reader that saw n has seen every record up to n. Epochs already stored (a retried
        epoch) are skipped under that lock and take no number.
        """
        locked = self.session.scalar(select(Job.id).where(Job.id == job_id).with_for_update())
        if locked is None:
            raise LookupError(f"job {job_id} does not exist")
        wanted = {(r.run_id, r.epoch) for r in records}
        stored = set(
            self.session.execute(
                select(EpochMetric.run_id, EpochMetric.epoch).where(
                    EpochMetric.job_id == job_id,
                    tuple_(EpochMetric.run_id, EpochMetric.epoch).in_(wanted),
                )
            ).tuples()
        )
        new: list[EpochRecord] = []
        for record in records:
            key = (record.run_id, record.epoch)
            if key not in stored:
                stored.add(key)
                new.append(record)
        if not new:
            return []
        last = self.session.scalar(
            update(Job)
            .where(Job.id == job_id)
            .values(metrics_seq=Job.metrics_seq + len(new))
            .returning(Job.metrics_seq)
        )
        assert last is not None
        first = last - len(new) + 1
        self.session.execute(
            insert(EpochMetric),
            [
                {"job_id": job_id, "seq": first + i, **record.model_dump()}
                for i, record in enumerate(new)
            ],
        )
        return [SequencedRecord(seq=first + i, record=r) for i, r in enumerate(new)]

    def after(self, job_id: uuid.UUID, *, cursor: int, limit: int) -> list[SequencedRecord]:
        rows = self.session.scalars(
            select(EpochMetric)
            .where(EpochMetric.job_id == job_id, EpochMetric.seq > cursor)
            .order_by(EpochMetric.seq)
            .limit(limit)
        ).all()
        return [_sequenced(row) for row in rows]

    def for_job(self, job_id: uuid.UUID) -> list[EpochRecord]:
        rows = self.session.scalars(
            select(EpochMetric).where(EpochMetric.job_id == job_id).order_by(EpochMetric.seq)
        ).all()
        return [_sequenced(row).record for row in rows]

    def for_run(self, run_id: uuid.UUID) -> list[EpochRecord]:
        rows = self.session.scalars(
            select(EpochMetric).where(EpochMetric.run_id == run_id).order_by(EpochMetric.epoch)
        ).all()
        return [_sequenced(row).record for row in rows]


def _sequenced(row: EpochMetric) -> SequencedRecord:
    return SequencedRecord(
        seq=row.seq,
        record=EpochRecord(
            run_id=row.run_id,
            epoch=row.epoch,
            loss=row.loss,
            accuracy=row.accuracy,
            val_loss=row.val_loss,
            val_accuracy=row.val_accuracy,
            learning_rate=row.learning_rate,
            epoch_seconds=row.epoch_seconds,
            examples_seen=row.examples_seen,
            time=row.time,
            steps=row.steps,
            x=row.x,
            y=row.y,
        ),
    )
