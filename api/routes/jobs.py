"""/jobs: submit, list, read, poll metrics, compare, cancel."""

import csv
import hashlib
import io
import json
import logging
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Query, Response, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session

from api.auth import Principal, PrincipalDep, require_principal
from api.comparisons import ComparisonError, compare_job
from api.deps import ERRORS, QueueDep, SessionDep, SettingsDep, StreamDep
from api.schemas import ErrorOut, JobOut, JobPage, JobSummary, MetricItem, MetricsPage
from core.compare import Comparison, RaceComparison, RankBy, TestName
from core.expand import expand_job
from core.models import FINISHED_JOB, Job
from core.records import SequencedRecord
from core.repositories import EpochRepository, JobRepository, RunRepository
from core.spec import (
    JOB_EXAMPLE,
    RACE_EXAMPLE,
    AnyJobSpec,
    Limits,
    Metric,
    check_limits,
    parse_job,
)
from core.stream import MetricsStream

log = logging.getLogger(__name__)
router = APIRouter(
    prefix="/jobs", tags=["jobs"], dependencies=[Depends(require_principal)], responses=ERRORS
)

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
    "seeds": {
        "summary": "A paired experiment: three optimizers over five seeds",
        "value": {
            "dataset": {"name": "digits"},
            "optimizers": ["sgd", "adam", "rmsprop"],
            "epochs": [5, 10],
            "seeds": [0, 1, 2, 3, 4],
            "target": {"metric": "val_accuracy", "value": 0.9},
        },
    },
    "race": {"summary": "The 2-D optimizer race on Rosenbrock", "value": RACE_EXAMPLE},
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

JobSpecBody = Annotated[AnyJobSpec, Body(openapi_examples=EXAMPLES)]


def _not_found(job_id: uuid.UUID) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id}")


def visible_job(session: Session, job_id: uuid.UUID, principal: Principal, **options: bool) -> Job:
    """The job if this key may see it; another owner's job is as absent as a missing one."""
    job = JobRepository(session).get(job_id, **options)
    if job is None or not principal.sees(job.owner):
        raise _not_found(job_id)
    return job


IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=200,
        description="Send the same key again (a retry) to get the same job back, not a second "
        "one; the same key with another body is refused (422).",
    ),
]


def _request_sha256(spec: AnyJobSpec) -> str:
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=JobOut,
    responses={
        200: {"model": JobOut, "description": "A retry with the same Idempotency-Key."},
        503: {"model": ErrorOut, "description": "The broker is unreachable."},
    },
)
def submit_job(
    spec: JobSpecBody,
    session: SessionDep,
    settings: SettingsDep,
    queue: QueueDep,
    principal: PrincipalDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> JobOut:
    """Queue a comparison: one run per optimizer x batch size x seed.

    A body with an `objective` is a race: each optimizer steps (x, y) on a test function.
    """
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
    jobs.lock_owner(principal.owner)
    digest = _request_sha256(spec)
    if idempotency_key is not None:
        earlier = jobs.by_idempotency_key(principal.owner, idempotency_key)
        if earlier is not None:
            if earlier.request_sha256 != digest:
                raise HTTPException(
                    status.HTTP_422_UNPROCESSABLE_CONTENT,
                    f"Idempotency-Key {idempotency_key!r} was used for another request (job "
                    f"{earlier.id}); send a new key for a new job",
                )
            response.status_code = status.HTTP_200_OK
            response.headers["Idempotent-Replayed"] = "true"
            return _job_out(session, earlier.id)
    active = jobs.active_runs(principal.owner)
    if active + len(runs) > settings.max_active_runs_per_owner:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"{principal.owner} has {active} runs queued or running and this job adds "
            f"{len(runs)}; the limit is {settings.max_active_runs_per_owner}. Wait for runs "
            "to finish or cancel a job",
        )
    job, run_ids = jobs.create(
        name=spec.display_name(),
        spec=spec.model_dump(mode="json"),
        runs=runs,
        owner=principal.owner,
        idempotency_key=idempotency_key,
        request_sha256=digest,
    )
    session.commit()
    job_id = job.id
    try:
        queue.enqueue(run_ids)
    except Exception as error:
        log.exception("could not queue job %s", job_id)
        reason = f"could not be queued: the broker is unreachable ({type(error).__name__})"
        RunRepository(session).fail_unfinished(job_id, reason=reason)
        settled = jobs.settle(job_id)
        if settled is not None:  # A retry with the same Idempotency-Key makes a new job.
            settled.idempotency_key = None
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
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> JobPage:
    """Your jobs (an admin key: everyone's), newest first."""
    owner = None if principal.admin else principal.owner
    jobs, total = JobRepository(session).page(limit=limit, offset=offset, owner=owner)
    return JobPage(items=[JobSummary.of(j) for j in jobs], total=total, limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: uuid.UUID, session: SessionDep, principal: PrincipalDep) -> JobOut:
    """The job, its spec and every run with status, error and summary."""
    visible_job(session, job_id, principal)
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
    principal: PrincipalDep,
    after: Annotated[
        int, Query(ge=0, description="The next_cursor of the previous page; 0 from the start.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> MetricsPage:
    """Epoch records after the cursor. Pass next_cursor back to see each record exactly once."""
    # Read the job (status and last sequence number) before the records: every record up to
    # that number is committed, so a finished status is never paired with missing records.
    job = visible_job(session, job_id, principal)
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


MetricQuery = Annotated[Metric, Query(description="The metric to rank by (losses: lowest first).")]
EpochsQuery = Annotated[
    list[int], Query(description="Read every arm at these epoch budgets (repeat the parameter).")
]
BatchQuery = Annotated[list[int], Query(description="Only these batch sizes (repeatable).")]
CutQuery = Annotated[
    list[str],
    Query(
        description="Arms as BATCHxEPOCHS, such as cut=32x5&cut=128x20: batch 32 read at 5 "
        "epochs against batch 128 at 20. Instead of epochs and batch_size."
    ),
]
OptimizerQuery = Annotated[
    list[str], Query(description="Only these arms, by label or optimizer name (repeatable).")
]
RankByQuery = Annotated[
    RankBy, Query(description="Rank by each run's best value within the budget, or its final.")
]
TestQuery = Annotated[
    TestName,
    Query(description="Paired test between arms over seeds: t (paired t-test) or wilcoxon."),
]
TargetQuery = Annotated[
    float | None,
    Query(description="Report epochs, steps, examples and seconds to reach this value."),
]


@router.get("/{job_id}/comparison", response_model=Comparison | RaceComparison)
def get_comparison(
    job_id: uuid.UUID,
    session: SessionDep,
    principal: PrincipalDep,
    metric: MetricQuery = "val_accuracy",
    epochs: EpochsQuery = [],  # noqa: B006 (FastAPI copies defaults)
    batch_size: BatchQuery = [],  # noqa: B006
    cut: CutQuery = [],  # noqa: B006
    optimizer: OptimizerQuery = [],  # noqa: B006
    by: RankByQuery = "best",
    test: TestQuery = "t",
    target: TargetQuery = None,
    tolerance: Annotated[
        float | None, Query(gt=0, description="Races: distance to a minimum that counts.")
    ] = None,
) -> Comparison | RaceComparison:
    """Arms ranked over their seeds, with paired tests; for a race, trajectories ranked.

    An arm is an optimizer at one batch size, read at one epoch budget. Each arm reports the
    mean, standard deviation and 95% confidence interval over seeds of its best and final
    value, the mean curve with its band, the area under the curve, the generalization gap,
    time to target and which runs diverged or failed. `runs` lists every run on its own.
    """
    job = visible_job(session, job_id, principal, with_runs=True)
    try:
        return compare_job(
            session,
            job,
            metric=metric,
            cuts=cut,
            epochs=epochs,
            batch_sizes=batch_size,
            optimizers=optimizer,
            ranked_by=by,
            test=test,
            target=target,
            tolerance=tolerance,
        )
    except ComparisonError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from error


EXPORT_COLUMNS = (
    "job_id",
    "run_id",
    "run_index",
    "label",
    "optimizer",
    "batch_size",
    "seed",
    "status",
    "epoch",
    "steps",
    "examples_seen",
    "epoch_seconds",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "learning_rate",
    "x",
    "y",
)


@router.get(
    "/{job_id}/export.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "One row per run and epoch."}},
)
def export_csv(job_id: uuid.UUID, session: SessionDep, principal: PrincipalDep) -> Response:
    """Every epoch record (every step, for a race) with its run: for spreadsheets and pandas."""
    job = visible_job(session, job_id, principal, with_runs=True)
    runs = {r.id: r for r in job.runs}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    records = sorted(
        EpochRepository(session).for_job(job_id), key=lambda r: (runs[r.run_id].index, r.epoch)
    )
    for record in records:
        run = runs[record.run_id]
        writer.writerow(
            [
                job.id,
                run.id,
                run.index,
                run.label,
                run.optimizer["name"],
                run.batch_size,
                run.seed,
                run.status.value,
                record.epoch,
                record.steps,
                record.examples_seen,
                record.epoch_seconds,
                *(
                    "" if v is None else repr(v)
                    for v in (
                        record.loss,
                        record.accuracy,
                        record.val_loss,
                        record.val_accuracy,
                        record.learning_rate,
                        record.x,
                        record.y,
                    )
                ),
            ]
        )
    filename = f"optarena-{job.id}.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/{job_id}/plot.{fmt}",
    response_class=Response,
    responses={200: {"content": {"image/png": {}, "image/svg+xml": {}}}},
)
def plot(
    job_id: uuid.UUID,
    fmt: Literal["png", "svg"],
    session: SessionDep,
    principal: PrincipalDep,
    metric: Annotated[Metric, Query(description="Training jobs: the metric to draw.")] = "val_loss",
    x: Annotated[
        Literal["epoch", "steps", "examples", "seconds"], Query(description="The x-axis.")
    ] = "epoch",
) -> Response:
    """The curves of every run, coloured by arm; for a race, the contour with every path."""
    job = visible_job(session, job_id, principal, with_runs=True)
    from api.plots import draw  # matplotlib loads on the first plot, not at start-up

    records = EpochRepository(session).for_job(job_id)
    image = draw(parse_job(job.spec), job.name, job.runs, records, metric=metric, x=x, fmt=fmt)
    return Response(image, media_type="image/png" if fmt == "png" else "image/svg+xml")


@router.post(
    "/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses={409: {"model": ErrorOut, "description": "The job has already ended."}},
)
def cancel_job(
    job_id: uuid.UUID,
    session: SessionDep,
    stream: StreamDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> JobOut:
    """Queued runs never start; running runs stop at the end of their current batch."""
    jobs = JobRepository(session)
    job = visible_job(session, job_id, principal, lock=True)
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
