"""Jobs: submit, list, read, poll, compare, export, draw and cancel."""

import csv
import hashlib
import io
import json
import logging
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy.orm import Session

from api.schemas import JobOut, JobPage, JobSummary, MetricsPage
from core import kinds
from core.db import after_commit
from core.errors import Conflict, Invalid, LimitExceeded, NotFound, Rejected
from core.keys import Principal
from core.kinds.base import Comparand, Drawing, JobSpec, Referenced
from core.models import FINISHED_JOB, Job
from core.records import Sequenced
from core.repositories import JobRepository, RecordRepository, UploadRepository
from core.runs import RunInfo
from core.settings import Settings
from core.stream import MetricsStream

log = logging.getLogger(__name__)


def not_found(job_id: uuid.UUID) -> NotFound:
    return NotFound(f"no job {job_id}")


def visible(
    session: Session, job_id: uuid.UUID, principal: Principal, *, lock: bool = False
) -> Job:
    job = JobRepository(session).visible(job_id, principal, with_runs=not lock, lock=lock)
    if job is None:
        raise not_found(job_id)
    return job


def request_sha256(stored: dict[str, Any]) -> str:
    """The digest of a job's spec as stored (`model_dump(mode="json")`), keys sorted."""
    canonical = json.dumps(stored, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def job_out(session: Session, job_id: uuid.UUID, principal: Principal) -> JobOut:
    session.flush()
    session.expire_all()  # read the job and its runs as the transaction has them now
    return JobOut.of(visible(session, job_id, principal))


def submit(
    session: Session,
    settings: Settings,
    principal: Principal,
    spec: JobSpec,
    *,
    idempotency_key: str | None,
) -> tuple[JobOut, bool]:
    """Queue a job: its runs and their messages in one transaction. The answer, and whether
    it is an earlier job replayed for the same Idempotency-Key."""
    resolve_jobs(session, principal, spec)
    problems = spec.problems(settings)
    if problems:
        raise Rejected(problems)
    resolve_uploads(session, principal, spec)
    runs = [(uuid.uuid4(), plan) for plan in spec.expand()]
    job_id, name, stored = uuid.uuid4(), spec.display_name(), spec.model_dump(mode="json")
    digest = request_sha256(stored)
    done = JobRepository(session).submit(
        job_id=job_id,
        name=name,
        kind=spec.kind,
        spec=stored,
        runs=runs,
        queue=settings.task_queue,
        owner=principal.owner,
        idempotency_key=idempotency_key,
        request_sha256=digest,
        max_active_runs=settings.max_active_runs_per_owner,
    )
    if done.outcome == "earlier":
        assert done.job_id is not None
        if done.request_sha256 != digest:
            raise Invalid(
                f"Idempotency-Key {idempotency_key!r} was used for another request (job "
                f"{done.job_id}); send a new key for a new job"
            )
        return job_out(session, done.job_id, principal), True
    if done.outcome == "limit":
        raise LimitExceeded(
            f"{principal.owner} has {done.active} runs queued or running and this job adds "
            f"{len(runs)}; the limit is {settings.max_active_runs_per_owner}. Wait for runs "
            "to finish or cancel a job"
        )
    assert done.created_at is not None
    job = JobOut.queued(
        job_id=job_id,
        kind=spec.kind,
        name=name,
        owner=principal.owner,
        spec=stored,
        created_at=done.created_at,
        runs=runs,
    )
    return job, False


def resolve_uploads(session: Session, principal: Principal, spec: JobSpec) -> None:
    """The uploads the job names must be the caller's (another owner's look as if they did
    not exist), and the job must fit their stored facts: 422 at the field otherwise."""
    uploads = UploadRepository(session)
    meta: dict[Any, dict[str, Any]] = {}
    missing = []
    for loc, kind, upload_id in spec.uploads():
        found = uploads.visible(upload_id, principal, kind)
        if found is None:
            missing.append((loc, f"no {kind} {upload_id}; upload one with POST /{kind}s"))
        else:
            meta[upload_id] = found.meta
    if missing:
        raise Rejected(missing)
    problems = spec.check_uploads(meta)
    if problems:
        raise Rejected(problems)


def resolve_jobs(session: Session, principal: Principal, spec: JobSpec) -> None:
    """Take from the earlier jobs the spec names what it needs (a range test's interval);
    a job the principal cannot see is as unknown as a missing one."""
    named = spec.referenced_jobs()
    if not named:
        return
    found: dict[Any, Referenced] = {}
    missing = []
    for loc, job_id in named:
        if job_id in found:
            continue
        job = JobRepository(session).visible(job_id, principal, with_runs=True)
        if job is None:
            missing.append((loc, f"no job {job_id}"))
            continue
        taken = comparand(session, job, kinds.ComparisonParams())
        found[job_id] = Referenced(
            kind=job.kind, status=job.status.value, spec=taken.spec, comparison=kinds.compare(taken)
        )
    if missing:
        raise Rejected(missing)
    problems = spec.use_jobs(found)
    if problems:
        raise Rejected(problems)


def page(session: Session, principal: Principal, *, limit: int, offset: int) -> JobPage:
    jobs, total = JobRepository(session).page(principal, limit=limit, offset=offset)
    return JobPage(items=[JobSummary.of(j) for j in jobs], total=total, limit=limit, offset=offset)


def _live_or_stored(
    job: Job, session: Session, stream: MetricsStream, *, cursor: int, limit: int
) -> list[Sequenced]:
    if cursor >= job.metrics_seq:
        return []
    try:
        live = stream.read_after(job.id, cursor=cursor, limit=limit)
    except Exception as error:  # Redis down or stream unreadable: Postgres has every record.
        log.warning("metrics stream of job %s unreadable: %s", job.id, error)
        live = []
    return live or RecordRepository(session).after(job.id, cursor=cursor, limit=limit)


def metrics(
    session: Session,
    stream: MetricsStream,
    principal: Principal,
    job_id: uuid.UUID,
    *,
    after: int,
    limit: int,
) -> MetricsPage:
    """Records after the cursor. The job (status, last number) is read first: every record up
    to that number is committed, so a finished status is never paired with missing records."""
    job = visible(session, job_id, principal)
    if after > job.metrics_seq:
        raise Conflict(f"cursor {after} is beyond this job's last record ({job.metrics_seq})")
    records = _live_or_stored(job, session, stream, cursor=after, limit=limit)
    item = kinds.RECORD_ITEMS[job.kind]
    next_cursor = records[-1].seq if records else after
    return MetricsPage(
        job_id=job.id,
        kind=job.kind,
        status=job.status,
        items=[item.model_validate({**r.data, "cursor": str(r.seq)}) for r in records],
        next_cursor=str(next_cursor),
        done=job.status in FINISHED_JOB and next_cursor >= job.metrics_seq,
    )


@dataclass(frozen=True)
class MetricsLines:
    """Records as JSON lines, and where the next read starts."""

    body: str
    status: str
    next_cursor: int
    done: bool


def metrics_lines(
    session: Session, principal: Principal, job_id: uuid.UUID, *, after: int, limit: int
) -> MetricsLines:
    """Records after the cursor as newline-delimited JSON, from Postgres in one pass: the bulk
    read of a history. The job is read first, as for a page, so a finished status is never
    paired with missing records."""
    job = visible(session, job_id, principal)
    if after > job.metrics_seq:
        raise Conflict(f"cursor {after} is beyond this job's last record ({job.metrics_seq})")
    body, last = RecordRepository(session).lines_after(job.id, cursor=after, limit=limit)
    last = min(last, job.metrics_seq)  # (a record committed after the job row was read waits)
    return MetricsLines(
        body=body,
        status=job.status.value,
        next_cursor=last,
        done=job.status in FINISHED_JOB and last >= job.metrics_seq,
    )


def records_by_run(session: Session, jobs: Iterable[Job]) -> dict[uuid.UUID, list[Any]]:
    """Every record of these jobs as their kinds' records, by run, in position order."""
    record_of = {job.id: kinds.get_kind(job.kind).record for job in jobs}
    runs = {run.id: record_of[run.job_id] for job in jobs for run in job.runs}
    grouped: dict[uuid.UUID, list[Any]] = {}
    for data in RecordRepository(session).for_jobs(list(record_of)):
        run_id = uuid.UUID(data["run_id"])
        grouped.setdefault(run_id, []).append(runs[run_id].model_validate(data))
    return grouped


def comparand(session: Session, job: Job, params: BaseModel) -> Comparand:
    return Comparand(
        spec=kinds.parse_job(job.spec),
        runs=[RunInfo.model_validate(r) for r in job.runs],
        records=records_by_run(session, [job]),
        params=params,
        job_id=job.id,
    )


def compare(
    session: Session, principal: Principal, job_id: uuid.UUID, params: BaseModel
) -> BaseModel:
    return kinds.compare(comparand(session, visible(session, job_id, principal), params))


DRAWING = threading.Lock()
RUN_COLUMNS = (
    "job_id",
    "run_id",
    "run_index",
    "label",
    "optimizer",
    "batch_size",
    "seed",
    "phase",
    "trial",
)


def export_csv(session: Session, principal: Principal, job_id: uuid.UUID) -> str:
    """Every record with its run: one row per record, the kind's fields as columns."""
    job = visible(session, job_id, principal)
    kind = kinds.get_kind(job.kind)
    fields = [f for f in kind.record.model_fields if f != "run_id"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*RUN_COLUMNS, "status", *fields])
    grouped = records_by_run(session, [job])
    for run in job.runs:
        for record in grouped.get(run.id, []):
            values = [_cell(getattr(record, f)) for f in fields]
            writer.writerow(
                [
                    job.id,
                    run.id,
                    run.index,
                    run.label,
                    run.optimizer["name"],
                    "" if run.batch_size is None else run.batch_size,
                    "" if run.seed is None else run.seed,
                    "" if run.phase is None else run.phase,
                    "" if run.trial is None else run.trial,
                    run.status.value,
                    *(
                        "" if v is None else (repr(v) if isinstance(v, float) else v)
                        for v in values
                    ),
                ]
            )
    return out.getvalue()


def _cell(value: object) -> object:
    """A CSV cell: floats at full precision, None empty."""
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else value


def plot(
    session: Session,
    principal: Principal,
    job_id: uuid.UUID,
    params: BaseModel,
    *,
    fmt: Literal["png", "svg"],
) -> bytes:
    job = visible(session, job_id, principal)
    found = comparand(session, job, params)
    with DRAWING:  # matplotlib's mathtext parser (log-axis tick labels) is not thread-safe
        return kinds.plot(
            Drawing(
                spec=found.spec,
                title=job.name,
                runs=found.runs,
                records=found.records,
                params=params,
                fmt=fmt,
            )
        )


def cancel(
    session: Session,
    stream: MetricsStream,
    settings: Settings,
    principal: Principal,
    job_id: uuid.UUID,
) -> JobOut:
    """Queued runs never start; running runs stop at the end of their current batch. The
    Redis flag is raised once the cancel is committed (workers also read it from the row)."""
    jobs = JobRepository(session)
    job = visible(session, job_id, principal, lock=True)
    if job.status in FINISHED_JOB:
        raise Conflict(f"job {job_id} already ended: {job.status.value}")
    jobs.request_cancel(job)
    settled = jobs.settle(job_id)
    ended = settled is not None and settled.status in FINISHED_JOB

    def flag() -> None:
        stream.request_cancel(job_id, ttl_seconds=settings.max_run_seconds)
        if ended:
            stream.expire_after_job(job_id)

    after_commit(session, flag)
    return job_out(session, job_id, principal)
