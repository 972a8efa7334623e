"""Every query the service makes. Repositories never commit: the caller owns the transaction."""

import json
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    Text,
    and_,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by, insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, selectinload

from core.db import driver_row, driver_scalar
from core.keys import Principal
from core.models import (
    FINISHED_JOB,
    FINISHED_RUN,
    Job,
    JobStatus,
    OutboxMessage,
    RecordRow,
    Run,
    RunStatus,
    Upload,
)
from core.outbox import RUN_TASK, OutboxRepository
from core.records import Record, Sequenced
from core.runs import RunPlan

ADD_RECORDS = text("SELECT out_ord, out_seq FROM optarena_add_records(:job, CAST(:rows AS jsonb))")
NO_DATA_FOUND = "P0002"  # the SQLSTATE optarena_add_records raises for a missing job
SUBMIT = "SELECT * FROM optarena_submit(%s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s)"


def _now() -> datetime:
    return datetime.now(UTC)


def _seconds_ago(seconds: float) -> Any:
    return func.now() - func.make_interval(0, 0, 0, 0, 0, 0, seconds)


def ping(session: Session) -> None:
    """Raises unless Postgres answers."""
    session.execute(select(1))


def readable(principal: Principal) -> Select[Job]:
    """The jobs this key may see: its owner's, or everyone's for an admin. The one rule."""
    query = select(Job)
    return query if principal.admin else query.where(Job.owner == principal.owner)


@dataclass(frozen=True)
class Submission:
    """What `optarena_submit` did: "created" the job (when: `created_at`), found the owner's
    "earlier" job under the Idempotency-Key (`job_id`, its `request_sha256`), or refused it
    over the owner's "limit" of active runs (`active`); only "created" wrote anything."""

    outcome: str
    job_id: uuid.UUID | None
    request_sha256: str | None
    active: int | None
    created_at: datetime | None


class JobRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def submit(
        self,
        *,
        job_id: uuid.UUID,
        name: str,
        kind: str,
        spec: dict[str, Any],
        runs: Sequence[tuple[uuid.UUID, RunPlan]],
        queue: str,
        owner: str,
        idempotency_key: str | None,
        request_sha256: str | None,
        max_active_runs: int,
    ) -> Submission:
        """A submission in one call (`optarena_submit`, migration 20261207_0009), under the
        owner's lock until the transaction ends: the earlier job under this Idempotency-Key,
        or the owner's active runs if these would pass `max_active_runs`, or else the queued
        job, its queued runs (ids given) and a message per run in the outbox."""
        planned = [
            {
                "id": str(run_id),
                "index": plan.index,
                "arm": plan.arm,
                "label": plan.label,
                "optimizer": plan.optimizer,
                "seed": plan.seed,
                "batch_size": plan.batch_size,
                "budget": plan.budget,
                "phase": plan.phase,
                "trial": plan.trial,
            }
            for run_id, plan in runs
        ]
        job = {"id": str(job_id), "name": name, "kind": kind, "spec": spec}
        row = driver_row(
            self.session.connection(),
            SUBMIT,
            (
                owner,
                idempotency_key,
                request_sha256,
                max_active_runs,
                json.dumps(job),
                json.dumps(planned),
                RUN_TASK,
                queue,
            ),
        )
        assert row is not None  # the function always answers one row
        done = Submission(*row)
        if done.outcome == "created":
            OutboxRepository(self.session).wake_relay_after_commit()
        return done

    def create(
        self,
        *,
        name: str,
        kind: str,
        spec: dict[str, Any],
        runs: Sequence[RunPlan],
        queue: str,
        owner: str = "",
        idempotency_key: str | None = None,
        request_sha256: str | None = None,
    ) -> Job:
        """A queued job, its queued runs, and a message per run in the outbox, written as a
        submission writes them (`submit`, with no limit on active runs)."""
        job_id = uuid.uuid4()
        done = self.submit(
            job_id=job_id,
            name=name,
            kind=kind,
            spec=spec,
            runs=[(uuid.uuid4(), plan) for plan in runs],
            queue=queue,
            owner=owner,
            idempotency_key=idempotency_key,
            request_sha256=request_sha256,
            max_active_runs=2**62,
        )
        if done.outcome != "created":
            raise ValueError(f"no job created: {owner} has job {done.job_id} under this key")
        return self.session.scalars(
            select(Job).where(Job.id == job_id).options(selectinload(Job.runs))
        ).one()

    def add_runs(self, job_id: uuid.UUID, runs: Sequence[RunPlan], *, queue: str) -> list[Run]:
        """Queued runs of the job, each with its message in the outbox."""
        rows = [
            Run(
                id=uuid.uuid4(),
                job_id=job_id,
                index=r.index,
                arm=r.arm,
                label=r.label,
                optimizer=r.optimizer,
                seed=r.seed,
                batch_size=r.batch_size,
                budget=r.budget,
                phase=r.phase,
                trial=r.trial,
                status=RunStatus.QUEUED,
            )
            for r in runs
        ]
        self.session.add_all(rows)
        self.session.flush()
        OutboxRepository(self.session).add_runs([row.id for row in rows], queue=queue)
        return rows

    def progress(self, job_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, tuple[JobStatus, int]]:
        """Each job's status and last record number (a job that is gone is left out)."""
        rows = self.session.execute(
            select(Job.id, Job.status, Job.metrics_seq).where(Job.id.in_(list(job_ids)))
        ).tuples()
        return {job_id: (status, metrics_seq) for job_id, status, metrics_seq in rows}

    def get(self, job_id: uuid.UUID, *, lock: bool = False) -> Job | None:
        query = select(Job).where(Job.id == job_id)
        if lock:
            query = query.with_for_update()
        return self.session.scalars(query).one_or_none()

    def visible(
        self,
        job_id: uuid.UUID,
        principal: Principal,
        *,
        with_runs: bool = False,
        lock: bool = False,
    ) -> Job | None:
        """The job if this key may see it (another owner's is as absent as a missing one)."""
        query = readable(principal).where(Job.id == job_id)
        if with_runs:
            query = query.options(selectinload(Job.runs))
        if lock:
            query = query.with_for_update(of=Job)
        return self.session.scalars(query).one_or_none()

    def page(self, principal: Principal, *, limit: int, offset: int) -> tuple[list[Job], int]:
        """Newest first, of the jobs this key may see, with their total count."""
        query = readable(principal)
        jobs = self.session.scalars(
            query.options(selectinload(Job.runs))
            .order_by(Job.created_at.desc(), Job.id.desc())
            .limit(limit)
            .offset(offset)
        ).all()
        total = self.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        return list(jobs), total

    def request_cancel(self, job: Job) -> list[uuid.UUID]:
        """Mark the job cancelled-on-request and cancel its queued and paused runs; their ids."""
        now = _now()
        if job.cancel_requested_at is None:
            job.cancel_requested_at = now
        cancelled = self.session.scalars(
            update(Run)
            .where(Run.job_id == job.id, Run.status.in_([RunStatus.QUEUED, RunStatus.PAUSED]))
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
    return func.coalesce(Run.heartbeat_at, Run.started_at) < _seconds_ago(seconds)


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
        """The job's runs as stored now (objects this session holds are refreshed)."""
        return list(
            self.session.scalars(
                select(Run)
                .where(Run.job_id == job_id)
                .order_by(Run.index)
                .execution_options(populate_existing=True)
            )
        )

    def queued(self, job_id: uuid.UUID) -> list[Run]:
        """The job's queued runs, in order."""
        return list(
            self.session.scalars(
                select(Run)
                .where(Run.job_id == job_id, Run.status == RunStatus.QUEUED)
                .order_by(Run.index)
            )
        )

    def states_of(
        self, job_ids: Collection[uuid.UUID]
    ) -> dict[uuid.UUID, list[tuple[uuid.UUID, int, RunStatus, str | None]]]:
        """(id, index, status, error) of each of the jobs' runs, in order, by job."""
        found: dict[uuid.UUID, list[tuple[uuid.UUID, int, RunStatus, str | None]]] = {
            job_id: [] for job_id in job_ids
        }
        rows = self.session.execute(
            select(Run.job_id, Run.id, Run.index, Run.status, Run.error)
            .where(Run.job_id.in_(list(job_ids)))
            .order_by(Run.job_id, Run.index)
        ).tuples()
        for job_id, run_id, index, status, error in rows:
            found[job_id].append((run_id, index, status, error))
        return found

    def visible(self, run_ids: Sequence[uuid.UUID], principal: Principal) -> list[Run]:
        """Those of the runs whose jobs this key may see."""
        jobs = readable(principal).with_only_columns(Job.id)
        return list(
            self.session.scalars(
                select(Run).where(Run.id.in_(run_ids), Run.job_id.in_(jobs)).order_by(Run.index)
            )
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

    def hand_back(self, run_id: uuid.UUID, *, attempt: int, queue: str) -> bool:
        """Queue the run again after a clean stop (a shutdown), with its message in the outbox;
        it resumes from its checkpoint and the try does not count against the attempt limit."""
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
        if returned is None:
            return False
        OutboxRepository(self.session).add_runs([run_id], queue=queue)
        return True

    def pause(self, run_id: uuid.UUID, *, attempt: int, at: int) -> bool:
        """The run waits at position `at` for its group's decision (no message: the decision
        queues it again, or prunes it). Whether this attempt still held it."""
        paused = self.session.scalar(
            update(Run)
            .where(Run.id == run_id, Run.attempt == attempt, Run.status == RunStatus.RUNNING)
            .values(status=RunStatus.PAUSED, waiting_at=at, heartbeat_at=None, error=None)
            .returning(Run.id)
        )
        return paused is not None

    def resume(self, run_ids: Sequence[uuid.UUID], *, queue: str) -> list[uuid.UUID]:
        """Paused runs cleared past where they wait, queued again with their messages."""
        resumed = list(
            self.session.scalars(
                update(Run)
                .where(Run.id.in_(run_ids), Run.status == RunStatus.PAUSED)
                .values(status=RunStatus.QUEUED, cleared_at=Run.waiting_at, waiting_at=None)
                .returning(Run.id)
            )
        )
        OutboxRepository(self.session).add_runs(resumed, queue=queue)
        return resumed

    def prune(self, run_id: uuid.UUID, *, reason: str, summary: dict[str, Any]) -> bool:
        """A paused run ended by its group's decision."""
        pruned = self.session.scalar(
            update(Run)
            .where(Run.id == run_id, Run.status == RunStatus.PAUSED)
            .values(
                status=RunStatus.PRUNED,
                error=reason,
                summary=summary,
                finished_at=_now(),
            )
            .returning(Run.id)
        )
        return pruned is not None

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

    def unsent(self, *, silent_for: float, limit: int = 100) -> list[Run]:
        """Queued runs with no message pending and none sent for `silent_for` seconds: their
        message was lost (a broker that restarted empty, say). Locked; others skip them."""
        recent = exists().where(
            OutboxMessage.run_id == Run.id,
            or_(OutboxMessage.sent_at.is_(None), OutboxMessage.sent_at > _seconds_ago(silent_for)),
        )
        return list(
            self.session.scalars(
                select(Run)
                .where(
                    Run.status == RunStatus.QUEUED,
                    Run.created_at < _seconds_ago(silent_for),
                    ~recent,
                )
                .order_by(Run.created_at)
                .limit(limit)
                .with_for_update(skip_locked=True, of=Run)
            )
        )

    def with_expired_models(self, *, kept_for: float, limit: int = 100) -> list[Run]:
        """Finished runs whose trained model has been kept `kept_for` seconds. Locked."""
        return list(
            self.session.scalars(
                select(Run)
                .where(
                    Run.status == RunStatus.SUCCEEDED,
                    Run.finished_at < _seconds_ago(kept_for),
                    Run.summary.has_key("model_bytes"),
                )
                .order_by(Run.finished_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )

    def model_expired(self, run: Run) -> None:
        summary = {k: v for k, v in (run.summary or {}).items() if k != "model_bytes"}
        run.summary = summary | {"model_expired_at": _now().isoformat()}

    def requeue(self, run: Run, *, reason: str, queue: str) -> None:
        """Back to the queue after its worker died, with its message in the outbox."""
        run.status = RunStatus.QUEUED
        run.heartbeat_at = None
        run.error = reason
        OutboxRepository(self.session).add_runs([run.id], queue=queue)

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
        diverged_at: int | None = None,
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
                diverged_at=diverged_at,
                finished_at=_now(),
            )
            .returning(Run.id)
        )
        return done is not None


class RecordRepository:
    """Records on a session, or on a plain connection (`core.db.one_statement`: the write)."""

    def __init__(self, session: Session | Connection) -> None:
        self.session = session

    def add_many(self, *, job_id: uuid.UUID, records: Sequence[Record]) -> list[Sequenced]:
        """Store records under the job's next sequence numbers; those stored, numbered.

        One call of `optarena_add_records` (migration 20261201_0007), or for one record of
        `optarena_add_record` (20261202_0008, the epoch-by-epoch write): the job row is
        locked first, so numbers are committed in order and without gaps (a reader that saw
        n has seen every record up to n); records whose run and position are stored already
        (a retried epoch) are skipped under that lock and take no number.
        """
        if not records:
            return []
        try:
            if len(records) == 1:
                return self._add_one(job_id, records[0])
            return self._add_batch(job_id, records)
        except DBAPIError as error:
            if getattr(error.orig, "sqlstate", None) == NO_DATA_FOUND:
                raise LookupError(f"job {job_id} does not exist") from error
            raise

    def _add_one(self, job_id: uuid.UUID, record: Record) -> list[Sequenced]:
        stored = record.stored_json()
        # On the driver's connection: this runs once an epoch a run
        connection = (
            self.session.connection() if isinstance(self.session, Session) else self.session
        )
        seq = driver_scalar(
            connection,
            "SELECT optarena_add_record(%s, %s, %s, %s, %s::jsonb)",
            (job_id, record.run_id, record.position, record.time, stored),
        )
        if seq is None:
            return []
        return [Sequenced(seq=int(seq), text=stored, source=record)]

    def _add_batch(self, job_id: uuid.UUID, records: Sequence[Record]) -> list[Sequenced]:
        # Each record is serialized once: its text goes into the batch's JSON as it is, and
        # on to the stream.
        texts = [record.stored_json() for record in records]
        # an ISO time has nothing JSON escapes: it goes into the batch's JSON between quotes
        rows = ",".join(
            f'{{"ord":{i},"run_id":"{record.run_id}","position":{int(record.position)},'
            f'"time":"{record.time.isoformat()}","data":{stored}}}'
            for i, (record, stored) in enumerate(zip(records, texts, strict=True))
        )
        numbered = self.session.execute(ADD_RECORDS, {"job": job_id, "rows": f"[{rows}]"}).all()
        return [
            Sequenced(seq=seq, text=texts[ord_], source=records[ord_]) for ord_, seq in numbered
        ]

    def after(self, job_id: uuid.UUID, *, cursor: int, limit: int) -> list[Sequenced]:
        rows = self.session.execute(
            select(RecordRow.seq, RecordRow.data)
            .where(RecordRow.job_id == job_id, RecordRow.seq > cursor)
            .order_by(RecordRow.seq)
            .limit(limit)
        ).tuples()
        return [Sequenced(seq=seq, data=data) for seq, data in rows]

    def lines_after(self, job_id: uuid.UUID, *, cursor: int, limit: int) -> tuple[str, int]:
        """Up to `limit` records after the cursor as JSON lines (each with its "cursor"),
        written by Postgres in one pass; and the last seq among them (the cursor if none)."""
        with_cursor = RecordRow.data.op("||")(
            func.jsonb_build_object("cursor", cast(RecordRow.seq, Text))
        )
        page = (
            select(RecordRow.seq, cast(with_cursor, Text).label("line"))
            .where(RecordRow.job_id == job_id, RecordRow.seq > cursor)
            .order_by(RecordRow.seq)
            .limit(limit)
            .subquery()
        )
        body, last = self.session.execute(
            select(
                func.string_agg(page.c.line, aggregate_order_by(literal("\n"), page.c.seq)),
                func.max(page.c.seq),
            )
        ).one()
        return ("" if body is None else body + "\n"), (cursor if last is None else int(last))

    def for_jobs(self, job_ids: Sequence[uuid.UUID]) -> list[dict[str, Any]]:
        """Every record of these jobs, each run's in position order."""
        return list(
            self.session.scalars(
                select(RecordRow.data)
                .where(RecordRow.job_id.in_(job_ids))
                .order_by(RecordRow.run_id, RecordRow.position)
            )
        )


class UploadRepository:
    """Users' datasets and models: the rows; their bytes are in the artifact store."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def visible(self, upload_id: uuid.UUID, principal: Principal, kind: str) -> Upload | None:
        query = select(Upload).where(Upload.id == upload_id, Upload.kind == kind)
        if not principal.admin:
            query = query.where(Upload.owner == principal.owner)
        return self.session.scalar(query)

    def get(self, upload_id: uuid.UUID) -> Upload | None:
        return self.session.get(Upload, upload_id)

    def by_fingerprint(self, owner: str, kind: str, fingerprint: str) -> Upload | None:
        return self.session.scalar(
            select(Upload).where(
                Upload.owner == owner, Upload.kind == kind, Upload.fingerprint == fingerprint
            )
        )

    def add(self, upload: Upload) -> Upload | None:
        """The new row, or None when the same upload already exists (a concurrent twin)."""
        values = {
            c.key: getattr(upload, c.key)
            for c in Upload.__table__.columns
            if getattr(upload, c.key) is not None
        }
        inserted = self.session.scalar(
            insert(Upload)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["owner", "kind", "fingerprint"])
            .returning(Upload.id)
        )
        return None if inserted is None else self.session.get(Upload, inserted)

    def owned(self, principal: Principal, kind: str) -> list[Upload]:
        query = select(Upload).where(Upload.kind == kind).order_by(Upload.created_at.desc())
        if not principal.admin:
            query = query.where(Upload.owner == principal.owner)
        return list(self.session.scalars(query))

    def users(self, upload: Upload) -> list[uuid.UUID]:
        """Queued or running jobs whose spec names this upload as its dataset or model."""
        field = "dataset" if upload.kind == "dataset" else "model"
        return list(
            self.session.scalars(
                select(Job.id)
                .where(
                    Job.owner == upload.owner,
                    Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),
                    Job.spec[field]["id"].astext == str(upload.id),
                )
                .order_by(Job.created_at)
            )
        )

    def delete(self, upload: Upload) -> None:
        self.session.delete(upload)
