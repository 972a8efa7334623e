"""Response bodies (the run itself is core.runs.RunInfo; comparisons are each kind's)."""

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from core.kinds import KINDS, RecordItem
from core.models import Job, JobStatus, RunStatus
from core.runs import RunInfo, RunPlan


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
    metrics: list[str] = Field(
        description="What this job's records hold worth charting, the headline first."
    )
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
            metrics=list(KINDS[job.kind].job_metrics(job.spec)),
            spec=job.spec,
            runs=[RunInfo.model_validate(run) for run in job.runs],
        )

    @classmethod
    def queued(
        cls,
        *,
        job_id: uuid.UUID,
        kind: str,
        name: str,
        owner: str,
        spec: dict[str, Any],
        created_at: datetime,
        runs: list[tuple[uuid.UUID, RunPlan]],
    ) -> "JobOut":
        """A job just submitted, as stored: queued, its runs queued, none claimed yet."""
        return cls(
            id=job_id,
            kind=kind,
            name=name,
            owner=owner,
            status=JobStatus.QUEUED,
            created_at=created_at,
            finished_at=None,
            cancel_requested=False,
            unit=KINDS[kind].unit,
            metrics=list(KINDS[kind].job_metrics(spec)),
            spec=spec,
            runs=[
                RunInfo(
                    id=run_id,
                    index=plan.index,
                    arm=plan.arm,
                    label=plan.label,
                    optimizer=plan.optimizer,
                    seed=plan.seed,
                    batch_size=plan.batch_size,
                    budget=plan.budget,
                    phase=plan.phase,
                    trial=plan.trial,
                    status=RunStatus.QUEUED,
                    attempt=0,
                    handbacks=0,
                    heartbeat_at=None,
                    error=None,
                    diverged_at=None,
                    initial_weights_sha256=None,
                    summary=None,
                    environment=None,
                    created_at=created_at,  # the transaction's time, as the job's
                    started_at=None,
                    finished_at=None,
                )
                for run_id, plan in sorted(runs, key=lambda run: run[1].index)
            ],
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
    views: list[str] = Field(
        default_factory=list,
        description="plot.png?view= values that are pictures of their own (a tuned "
        "comparison's budget curves and sensitivity).",
    )
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
    """A dataset a job may name: built in (by `name`), or uploaded (by `id`)."""

    name: str
    id: uuid.UUID | None = Field(default=None, description="An upload's id; None: built in.")
    input_shape: list[int] | None = Field(description="None where the job chooses it.")
    classes: int | None
    train_examples: int | None
    test_examples: int | None = Field(
        default=None, description="Its own test set; None: test_split holds one out."
    )
    note: str


class UploadOut(BaseModel):
    """What every upload has: its id, its name and its bytes' size and SHA-256."""

    id: uuid.UUID
    name: str
    sha256: str
    bytes: int
    created_at: datetime

    @staticmethod
    def common(upload: Any) -> dict[str, Any]:
        return {k: getattr(upload, k) for k in ("id", "name", "sha256", "bytes", "created_at")}


class UploadedDatasetOut(UploadOut):
    task: Literal["classification", "regression"]
    input_shape: list[int]
    classes: int | None
    splits: dict[str, int] = Field(description="Examples per split: train, val and test.")
    format: Literal["npz", "csv"]
    label: str | None = Field(description="A CSV's label column.")

    @classmethod
    def of(cls, upload: Any) -> "UploadedDatasetOut":
        meta = upload.meta
        return cls(
            **cls.common(upload),
            **{k: meta[k] for k in ("task", "input_shape", "classes", "splits", "format")},
            label=meta.get("label"),
        )


class UploadedModelOut(UploadOut):
    input_shape: list[int | None]
    outputs: int
    output_activation: str = Field(description="softmax outputs are trained as probabilities.")
    parameters: int

    @classmethod
    def of(cls, upload: Any) -> "UploadedModelOut":
        meta = upload.meta
        facts = ("input_shape", "outputs", "output_activation", "parameters")
        return cls(**cls.common(upload), **{k: meta[k] for k in facts})


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
