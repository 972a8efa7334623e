"""Every query the service makes. Repositories never commit: the caller owns the transaction."""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, tuple_, update
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
        self,
        *,
        name: str,
        spec: dict[str, Any],
        runs: Sequence[RunSpec],
        owner: str = "",
        idempotency_key: str | None = None,
        request_sha256: str | None = None,
    ) -> tuple[Job, list[uuid.UUID]]:
        """A queued job and its queued runs; the job and the runs' ids in sweep order."""
        job = Job(
            id=uuid.uuid4(),
            name=name,
            spec=spec,
            status=JobStatus.QUEUED,
            owner=owner,
            idempotency_key=idempotency_key,
            request_sha256=request_sha256,
        )
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

    def page(self, *, limit: int, offset: int, owner: str | None = None) -> tuple[list[Job], int]:
        """Newest first (of one owner's jobs, or everyone's), with the total count."""
        where = [] if owner is None else [Job.owner == owner]
        jobs = self.session.scalars(
            select(Job)
            .where(*where)
            .options(selectinload(Job.runs))
            .order_by(Job.created_at.desc(), Job.id.desc())
            .limit(limit)
            .offset(offset)
        ).all()
        total = self.session.scalar(select(func.count()).select_from(Job).where(*where)) or 0
        return list(jobs), total

    def lock_owner(self, owner: str) -> None:
        """Serialize this owner's submissions until the transaction ends (limits, keys)."""
        self.session.execute(select(func.pg_advisory_xact_lock(func.hashtext(owner))))

    def by_idempotency_key(self, owner: str, key: str) -> Job | None:
        return self.session.scalars(
            select(Job).where(Job.owner == owner, Job.idempotency_key == key)
        ).one_or_none()

    def active_runs(self, owner: str) -> int:
        """The owner's queued and running runs."""
        return (
            self.session.scalar(
                select(func.count())
                .select_from(Run)
                .join(Job, Job.id == Run.job_id)
                .where(Job.owner == owner, Run.status.in_([RunStatus.QUEUED, RunStatus.RUNNING]))
            )
            or 0
        )

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


def tries(run: Run) -> int:
    """Attempts that count against the limit: claims, less clean hand-backs."""
    return run.attempt - run.handbacks


def _stale(seconds: float) -> Any:
    return func.coalesce(Run.heartbeat_at, Run.started_at) < func.now() - func.make_interval(
        0, 0, 0, 0, 0, 0, seconds
    )


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

    def claim(
        self,
        run_id: uuid.UUID,
        *,
        worker: str,
        stale_after: float | None = None,
        dead_worker: str | None = None,
    ) -> Run | None:
        """Take the run in one statement, so two deliveries cannot both train it.

        A queued run is always taken. A running one only when its heartbeat is older than
        `stale_after` seconds, or when its worker is `dead_worker` (a process this host knows
        is gone): then the earlier attempt is dead and this one resumes it.
        """
        takeable = [Run.status == RunStatus.QUEUED]
        if stale_after is not None:
            takeable.append(and_(Run.status == RunStatus.RUNNING, _stale(stale_after)))
        if dead_worker is not None:
            takeable.append(and_(Run.status == RunStatus.RUNNING, Run.worker == dead_worker))
        return self.session.scalars(
            update(Run)
            .where(Run.id == run_id, or_(*takeable))
            .values(
                status=RunStatus.RUNNING,
                attempt=Run.attempt + 1,
                started_at=func.coalesce(Run.started_at, func.now()),
                heartbeat_at=func.now(),
                worker=worker,
                error=None,
            )
            .returning(Run)
        ).one_or_none()

    def beat(self, run_id: uuid.UUID, *, attempt: int) -> tuple[bool, bool]:
        """Mark the run alive; (whether this attempt still holds it, whether its job is to be
        cancelled), the second read from Postgres, so a lost Redis flag cannot hide it."""
        held = self.session.scalar(
            update(Run)
            .where(Run.id == run_id, Run.attempt == attempt, Run.status == RunStatus.RUNNING)
            .values(heartbeat_at=func.now())
            .returning(Run.job_id)
        )
        if held is None:
            return False, False
        cancel_at = self.session.scalar(select(Job.cancel_requested_at).where(Job.id == held))
        return True, cancel_at is not None

    def hand_back(self, run_id: uuid.UUID, *, attempt: int) -> bool:
        """Queue the run again after a clean stop (a shutdown); it resumes from its checkpoint
        and the try does not count against the attempt limit."""
        returned = self.session.scalar(
            update(Run)
            .where(Run.id == run_id, Run.attempt == attempt, Run.status == RunStatus.RUNNING)
            .values(
                status=RunStatus.QUEUED,
                handbacks=Run.handbacks + 1,
                heartbeat_at=None,
                error=None,
            )
            .returning(Run.id)
        )
        return returned is not None

    def stale(self, *, stale_after: float, limit: int = 100) -> list[Run]:
        """Running runs whose heartbeat is older than `stale_after` s, locked (others skip)."""
        return list(
            self.session.scalars(
                select(Run)
                .where(Run.status == RunStatus.RUNNING, _stale(stale_after))
                .order_by(Run.heartbeat_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )

    def requeue(self, run: Run, *, reason: str) -> None:
        run.status = RunStatus.QUEUED
        run.heartbeat_at = None
        run.error = reason

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
        attempt: int | None = None,
    ) -> bool:
        """Record the outcome; with `attempt`, only if that attempt still holds the run (a
        worker presumed dead and replaced must not overwrite its successor). Whether it did."""
        fence = [] if attempt is None else [Run.attempt == attempt]
        done = self.session.scalar(
            update(Run)
            .where(Run.id == run_id, *fence)
            .values(
                status=status,
                summary=summary,
                error=error,
                diverged_epoch=diverged_epoch,
                finished_at=_now(),
            )
            .returning(Run.id)
        )
        return done is not None

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
