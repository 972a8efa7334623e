"""Response bodies (the run itself is core.runs.RunInfo; comparisons are each kind's)."""

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from core.kinds import KINDS, RecordItem
from core.models import Job, JobStatus
from core.runs import RunInfo


class JobBase(BaseModel):
    id: uuid.UUID
    kind: str = Field(description=f"The kind of job: {', '.join(KINDS)} (see GET /kinds).")
    name: str
    owner: str
    status: JobStatus
    created_at: datetime
    finished_at: datetime | None


class JobOut(JobBase):
    cancel_requested: bool
    unit: str = Field(description="What records are positioned by and budgets count: epoch, step.")
    spec: dict[str, Any] = Field(description="The job as accepted, defaults written out.")
    runs: list[RunInfo]

    @classmethod
    def of(cls, job: Job) -> "JobOut":
        return cls(
            id=job.id,
            kind=job.kind,
            name=job.name,
            owner=job.owner,
            status=job.status,
            created_at=job.created_at,
            finished_at=job.finished_at,
            cancel_requested=job.cancel_requested_at is not None,
            unit=KINDS[job.kind].unit,
            spec=job.spec,
            runs=[RunInfo.model_validate(run) for run in job.runs],
        )


class JobSummary(JobBase):
    runs: int
    runs_by_status: dict[str, int]

    @classmethod
    def of(cls, job: Job) -> "JobSummary":
        counts: dict[str, int] = {}
        for run in job.runs:
            counts[run.status.value] = counts.get(run.status.value, 0) + 1
        return cls(
            id=job.id,
            kind=job.kind,
            name=job.name,
            owner=job.owner,
            status=job.status,
            created_at=job.created_at,
            finished_at=job.finished_at,
            runs=len(job.runs),
            runs_by_status=counts,
        )


class JobPage(BaseModel):
    items: list[JobSummary]
    total: int
    limit: int
    offset: int


class MetricsPage(BaseModel):
    job_id: uuid.UUID
    kind: str
    status: JobStatus
    items: list[RecordItem]
    next_cursor: str = Field(description="Pass it back as ?after= for the next page.")
    done: bool = Field(description="The job has ended and every record has been read.")


class KindOut(BaseModel):
    """A kind of job, for clients that draw any kind: what to chart and against what."""

    name: str
    summary: str
    unit: str
    metrics: list[str] = Field(description="Record fields worth charting, the headline first.")
    lower_is_better: list[str]
    x_axes: list[str]
    picture: bool = Field(description="plot.png is a picture of its own (a race's contour).")
    job_schema: dict[str, Any] = Field(description="The JSON schema of this kind's job.")
    examples: dict[str, Any]


class ArgumentOut(BaseModel):
    name: str
    type: str
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    nullable: bool = False


class OptimizerOut(BaseModel):
    name: str
    keras_class: str
    arguments: list[ArgumentOut]


class DatasetOut(BaseModel):
    name: str
    input_shape: list[int] | None = Field(description="None where the job chooses it.")
    classes: int | None
    train_examples: int | None
    note: str


class ModelPresetOut(BaseModel):
    preset: str
    description: str
    job_schema: dict[str, Any]


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}


class Session(BaseModel):
    owner: str
    admin: bool


class ErrorOut(BaseModel):
    """What went wrong, in one sentence; a validation error also lists each field with its
    reason in `detail` and joins them in `message`."""

    detail: str | list[dict[str, Any]]
    message: str | None = None
