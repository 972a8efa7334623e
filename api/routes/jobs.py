"""/jobs: submit, list, read, poll metrics, compare, export, draw, cancel."""

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response, status

from api.auth import PrincipalDep, require_principal
from api.deps import ERRORS, SessionDep, SettingsDep, StreamDep
from api.schemas import ErrorOut, JobOut, JobPage, MetricsPage
from api.services import jobs
from core import kinds
from core.db import transaction
from core.kinds import AnyJobSpec, Comparison, ComparisonParams, PlotParams

router = APIRouter(
    prefix="/jobs", tags=["jobs"], dependencies=[Depends(require_principal)], responses=ERRORS
)

EXAMPLES: dict[str, Any] = {
    name: example for kind in kinds.KINDS.values() for name, example in kind.examples.items()
}
JobSpecBody = Annotated[AnyJobSpec, Body(openapi_examples=EXAMPLES)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=200,
        description="Send the same key again (a retry) to get the same job back, not a second "
        "one; the same key with another body is refused (422).",
    ),
]
Cursor = Annotated[
    int,
    Query(ge=0, le=2**62, description="The next_cursor of the previous page; 0 from the start."),
]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=JobOut,
    responses={200: {"model": JobOut, "description": "A retry with the same Idempotency-Key."}},
)
def submit_job(
    spec: JobSpecBody,
    request: Request,
    settings: SettingsDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Queue a job: one run per optimizer x batch size x seed (a race: one per optimizer).

    The runs start once the job is committed; if the broker is down they wait for it, queued.
    """
    # The request's transaction, begun and ended in the endpoint's one turn of the thread
    # pool (the session dependency takes a second turn to end it): committed, and the relay
    # woken, before the answer is sent. The answer is serialized in the same turn (a model
    # returned from a synchronous endpoint is validated and serialized in a turn of its own).
    with transaction(request.app.state.sessions) as session:
        job, replayed = jobs.submit(
            session, settings, principal, spec, idempotency_key=idempotency_key
        )
    return Response(
        job.model_dump_json(),
        status_code=status.HTTP_200_OK if replayed else status.HTTP_201_CREATED,
        media_type="application/json",
        headers={"Idempotent-Replayed": "true"} if replayed else None,
    )


@router.get("", response_model=JobPage)
def list_jobs(
    session: SessionDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> JobPage:
    """Your jobs (an admin key: everyone's), newest first."""
    return jobs.page(session, principal, limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: uuid.UUID, session: SessionDep, principal: PrincipalDep) -> JobOut:
    """The job, its spec and every run with status, error and summary."""
    return jobs.job_out(session, job_id, principal)


@router.get(
    "/{job_id}/metrics",
    response_model=MetricsPage,
    responses={409: {"model": ErrorOut, "description": "The cursor is past the last record."}},
)
def get_metrics(
    job_id: uuid.UUID,
    session: SessionDep,
    stream: StreamDep,
    principal: PrincipalDep,
    after: Cursor = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> MetricsPage:
    """Records after the cursor. Pass next_cursor back to see each record exactly once."""
    return jobs.metrics(session, stream, principal, job_id, after=after, limit=limit)


@router.get(
    "/{job_id}/metrics.ndjson",
    response_class=Response,
    responses={
        200: {
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
            "description": "One record a line, each with its cursor; the headers "
            "Optarena-Next-Cursor, Optarena-Done and Optarena-Status say where to go on.",
        },
        409: {"model": ErrorOut, "description": "The cursor is past the last record."},
    },
)
def get_metrics_lines(
    job_id: uuid.UUID,
    session: SessionDep,
    principal: PrincipalDep,
    after: Cursor = 0,
    limit: Annotated[int, Query(ge=1, le=1_000_000)] = 100_000,
) -> Response:
    """Records after the cursor as newline-delimited JSON: a whole history in one request
    (pandas: `read_json(url, lines=True)`). Pass Optarena-Next-Cursor back as ?after= until
    Optarena-Done is true; each record is seen exactly once."""
    found = jobs.metrics_lines(session, principal, job_id, after=after, limit=limit)
    return Response(
        found.body,
        media_type="application/x-ndjson",
        headers={
            "optarena-next-cursor": str(found.next_cursor),
            "optarena-done": "true" if found.done else "false",
            "optarena-status": found.status,
        },
    )


@router.get("/{job_id}/comparison", response_model=Comparison)
def get_comparison(
    job_id: uuid.UUID,
    session: SessionDep,
    principal: PrincipalDep,
    params: Annotated[ComparisonParams, Query()],  # type: ignore[valid-type]
) -> Any:
    """The job's runs compared, in its kind's terms (each answer has `kind` and a `table`).

    Training: an arm is an optimizer at one batch size read at one epoch budget; arms rank by
    their mean over seeds with 95% intervals, the mean curve with its band, the area under the
    curve, the generalization gap and time to target, and paired tests between arms over the
    seeds, Holm-corrected. A race: trajectories ranked by arrival. An arm, batch size or
    budget the job does not have is a 404 naming what it has.
    """
    return jobs.compare(session, principal, job_id, params)


@router.get(
    "/{job_id}/export.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "One row per record."}},
)
def export_csv(job_id: uuid.UUID, session: SessionDep, principal: PrincipalDep) -> Response:
    """Every record with its run: for spreadsheets and pandas."""
    return Response(
        jobs.export_csv(session, principal, job_id),
        media_type="text/csv",
        headers={"content-disposition": f'attachment; filename="optarena-{job_id}.csv"'},
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
    params: Annotated[PlotParams, Query()],  # type: ignore[valid-type]
) -> Response:
    """The job drawn: learning curves coloured by arm, or a race's contour with every path."""
    image = jobs.plot(session, principal, job_id, params, fmt=fmt)
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
    return jobs.cancel(session, stream, settings, principal, job_id)
