"""Response bodies."""

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from core.models import Job, Run
from core.records import EpochRecord


class RunOut(BaseModel):
    id: uuid.UUID
    index: int
    label: str
    optimizer: dict[str, Any]
    batch_size: int
    epochs: int
    seed: int
    status: str
    attempt: int = Field(description="Times a worker took the run (a crash and resume adds one).")
    handbacks: int = Field(description="Of those, tries handed back cleanly on shutdown.")
    heartbeat_at: datetime | None = Field(description="Last sign of life of its worker.")
    error: str | None
    diverged_epoch: int | None
    initial_weights_sha256: str | None
    summary: dict[str, Any] | None
    environment: dict[str, Any] | None
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, run: Run) -> "RunOut":
        return cls.model_validate(run, from_attributes=True)


def _kind(job: Job) -> str:
    return str(job.spec.get("kind", "train"))


class JobBase(BaseModel):
    id: uuid.UUID
    kind: str = Field(description="train: a training comparison; race: the 2-D optimizer race.")
    name: str
    owner: str
    status: str
    created_at: datetime
    finished_at: datetime | None


class JobOut(JobBase):
    cancel_requested: bool
    epoch_budgets: list[int] = Field(description="Epoch budgets; for a race, its steps.")
    spec: dict[str, Any]
    runs: list[RunOut]

    @classmethod
    def of(cls, job: Job) -> "JobOut":
        return cls(
            id=job.id,
            kind=_kind(job),
            name=job.name,
            owner=job.owner,
            status=job.status.value,
            created_at=job.created_at,
            finished_at=job.finished_at,
            cancel_requested=job.cancel_requested_at is not None,
            epoch_budgets=job.spec["epochs"] if "epochs" in job.spec else [job.spec["steps"]],
            spec=job.spec,
            runs=[RunOut.of(run) for run in job.runs],
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
            kind=_kind(job),
            name=job.name,
            owner=job.owner,
            status=job.status.value,
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


class MetricItem(EpochRecord):
    cursor: str


class MetricsPage(BaseModel):
    job_id: uuid.UUID
    status: str
    items: list[MetricItem]
    next_cursor: str
    done: bool


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
