"""/jobs: submit, list, read, poll metrics, compare, cancel."""

import logging
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session

from api.deps import QueueDep, SessionDep, SettingsDep, StreamDep
from api.schemas import JobOut, JobPage, JobSummary, MetricItem, MetricsPage
from core.compare import Comparison, RunFacts, compare_runs
from core.expand import expand_job
from core.models import FINISHED_JOB, Job
from core.records import SequencedRecord
from core.repositories import EpochRepository, JobRepository, RunRepository
from core.spec import JOB_EXAMPLE, JobSpec, Limits, Metric, check_limits
from core.stream import MetricsStream

log = logging.getLogger(__name__)
router = APIRouter(prefix="/jobs", tags=["jobs"])

EXAMPLES: dict[str, Any] = {
    "sgd-adam-rmsprop": {
        "summary": "Homework 1: SGD, Adam and RMSprop on one model",
        "value": {
            "name": "sgd-vs-adam-vs-rmsprop",
            "dataset": {"name": "digits"},
            "model": {"preset": "mlp", "hidden_units": [128], "dropout": 0.2},
            "optimizers": ["sgd", "adam", "rmsprop"],
            "batch_size": 32,
            "epochs": 5,
        },
    },
    "adam-sweep": {
        "summary": "Homework 2: Adam across batch sizes and epoch budgets",
        "value": {
            "dataset": {"name": "digits"},
            "optimizers": [{"name": "adam"}],
            "batch_size": [16, 64, 256],
            "epochs": [5, 10, 20],
        },
    },
    "full": {"summary": "Every field of the contract", "value": JOB_EXAMPLE},
    "keras2": {
        "summary": "Keras 2 spelling: lr and decay",
        "value": {
            "optimizers": [
                {"name": "sgd", "lr": 0.01, "decay": 1e-6, "momentum": 0.9, "nesterov": True}
            ],
            "epochs": 5,
        },
    },
}

JobSpecBody = Annotated[JobSpec, Body(openapi_examples=EXAMPLES)]


def _not_found(job_id: uuid.UUID) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id}")


@router.post("", status_code=status.HTTP_201_CREATED, response_model=JobOut)
def submit_job(
    spec: JobSpecBody, session: SessionDep, settings: SettingsDep, queue: QueueDep
) -> JobOut:
    """Queue a comparison: one run per optimizer x batch size x seed."""
    limits = Limits(
        max_runs_per_job=settings.max_runs_per_job,
        max_epochs=settings.max_epochs,
        max_batch_size=settings.max_batch_size,
    )
    problems = check_limits(spec, limits)
    if problems:
        raise RequestValidationError(
            [
                {"loc": ("body", *loc), "msg": msg, "type": "limit_exceeded", "input": None}
                for loc, msg in problems
            ]
        )
    runs = expand_job(spec)
    jobs = JobRepository(session)
    job, run_ids = jobs.create(
        name=spec.display_name(), spec=spec.model_dump(mode="json"), runs=runs
    )
    session.commit()
    job_id = job.id
    try:
        queue.enqueue(run_ids)
    except Exception as error:
        log.exception("could not queue job %s", job_id)
        reason = f"could not be queued: the broker is unreachable ({type(error).__name__})"
        RunRepository(session).fail_unfinished(job_id, reason=reason)
        jobs.settle(job_id)
        session.commit()
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"job {job_id} {reason}; submit it again"
        ) from error
    return _job_out(session, job_id)


def _job_out(session: Session, job_id: uuid.UUID) -> JobOut:
    session.expire_all()
    job = JobRepository(session).get(job_id, with_runs=True)
    if job is None:
        raise _not_found(job_id)
    return JobOut.of(job)


@router.get("", response_model=JobPage)
def list_jobs(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JobPage:
    """Jobs, newest first."""
    jobs, total = JobRepository(session).page(limit=limit, offset=offset)
    return JobPage(items=[JobSummary.of(j) for j in jobs], total=total, limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: uuid.UUID, session: SessionDep) -> JobOut:
    """The job, its spec and every run with status, error and summary."""
    return _job_out(session, job_id)


def _read_records(
    job: Job, session: Session, stream: MetricsStream, *, cursor: int, limit: int
) -> list[SequencedRecord]:
    if cursor >= job.metrics_seq:
        return []
    try:
        live = stream.read_after(job.id, cursor=cursor, limit=limit)
    except Exception as error:  # Redis down or stream unreadable: Postgres has every record.
        log.warning("metrics stream of job %s unreadable: %s", job.id, error)
        live = []
    if live:
        return live
    return EpochRepository(session).after(job.id, cursor=cursor, limit=limit)


@router.get("/{job_id}/metrics", response_model=MetricsPage)
def get_metrics(
    job_id: uuid.UUID,
    session: SessionDep,
    stream: StreamDep,
    after: Annotated[
        int, Query(ge=0, description="The next_cursor of the previous page; 0 from the start.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> MetricsPage:
    """Epoch records after the cursor. Pass next_cursor back to see each record exactly once."""
    # Read the job (status and last sequence number) before the records: every record up to
    # that number is committed, so a finished status is never paired with missing records.
    job = JobRepository(session).get(job_id)
    if job is None:
        raise _not_found(job_id)
    if after > job.metrics_seq:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"cursor {after} is beyond this job's last record ({job.metrics_seq})",
        )
    records = _read_records(job, session, stream, cursor=after, limit=limit)
    next_cursor = records[-1].seq if records else after
    return MetricsPage(
        job_id=job.id,
        status=job.status.value,
        items=[MetricItem(cursor=str(r.seq), **r.record.model_dump()) for r in records],
        next_cursor=str(next_cursor),
        done=job.status in FINISHED_JOB and next_cursor >= job.metrics_seq,
    )


@router.get("/{job_id}/comparison", response_model=Comparison)
def get_comparison(
    job_id: uuid.UUID,
    session: SessionDep,
    metric: Metric = "val_accuracy",
    epochs: Annotated[
        int | None, Query(ge=1, description="Cut every run at this epoch budget.")
    ] = None,
    target: Annotated[
        float | None, Query(description="Report epochs and seconds to reach this value.")
    ] = None,
) -> Comparison:
    """Every run ranked best first by the metric (losses lowest first)."""
    job = JobRepository(session).get(job_id, with_runs=True)
    if job is None:
        raise _not_found(job_id)
    spec_target = job.spec.get("target") or {}
    if target is None and spec_target.get("metric") == metric:
        target = spec_target.get("value")
    records: dict[uuid.UUID, list[Any]] = {run.id: [] for run in job.runs}
    for record in EpochRepository(session).for_job(job_id):
        records[record.run_id].append(record)
    facts = [
        RunFacts(
            id=r.id,
            index=r.index,
            label=r.label,
            optimizer=r.optimizer,
            batch_size=r.batch_size,
            epochs=r.epochs,
            seed=r.seed,
            status=r.status.value,
            error=r.error,
            diverged_epoch=r.diverged_epoch,
        )
        for r in job.runs
    ]
    return compare_runs(
        facts,
        records,
        metric=metric,
        budgets=job.spec["epochs"],
        at_epochs=epochs,
        target=target,
    )


@router.post("/{job_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut)
def cancel_job(
    job_id: uuid.UUID, session: SessionDep, stream: StreamDep, settings: SettingsDep
) -> JobOut:
    """Queued runs never start; running runs stop at the end of their current batch."""
    jobs = JobRepository(session)
    job = jobs.get(job_id, lock=True)
    if job is None:
        raise _not_found(job_id)
    if job.status in FINISHED_JOB:
        raise HTTPException(status.HTTP_409_CONFLICT, f"job {job_id} already ended: {job.status}")
    jobs.request_cancel(job)
    ended = jobs.settle(job_id) is not None and job.status in FINISHED_JOB
    session.commit()
    try:
        stream.request_cancel(job_id, ttl_seconds=settings.max_run_seconds)
        if ended:
            stream.expire_after_job(job_id)
    except Exception as error:  # Workers also read the request from the job row.
        log.warning("cancel flag for job %s not set in Redis: %s", job_id, error)
    return _job_out(session, job_id)
