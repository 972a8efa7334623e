"""A run: one optimizer configuration trained (or stepped) to its budget, as planned from a
job's spec and as stored."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.models import RunStatus


@dataclass(frozen=True)
class RunPlan:
    """One run a job expands into. Seed and batch size are None for kinds without them."""

    index: int
    arm: int
    label: str
    optimizer: dict[str, Any]
    budget: int
    seed: int | None = None
    batch_size: int | None = None
    phase: int | None = None
    trial: int | None = None


class RunInfo(BaseModel):
    """A run as stored: what clients read and comparisons work from."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    index: int
    arm: int = Field(description="Which of the job's optimizers this run trains (0-based).")
    label: str
    optimizer: dict[str, Any]
    seed: int | None
    batch_size: int | None
    budget: int = Field(description="Epochs or steps (the job's unit) the run goes to.")
    phase: int | None = Field(
        default=None,
        description="A tuning job's phase: 1 searches on the tuning seeds, 2 trains the chosen "
        "configurations on the final seeds.",
    )
    trial: int | None = Field(
        default=None, description="A tuning job's trial: which configuration of the search."
    )
    waiting_at: int | None = Field(
        default=None, description="A paused run: the epoch where it waits for its group."
    )
    cleared_at: int | None = Field(
        default=None, description="The last pruning rung the run was cleared past."
    )
    status: RunStatus
    attempt: int = Field(description="Times a worker took the run (a crash and resume adds one).")
    handbacks: int = Field(description="Of those, tries handed back cleanly on shutdown.")
    heartbeat_at: datetime | None = Field(description="Last sign of life of its worker.")
    error: str | None = Field(description="Why it failed, diverged or was cancelled.")
    diverged_at: int | None = Field(description="The epoch or step whose loss was not finite.")
    initial_weights_sha256: str | None
    summary: dict[str, Any] | None
    environment: dict[str, Any] | None
    created_at: datetime | None = Field(default=None, description="When it was queued.")
    started_at: datetime | None
    finished_at: datetime | None
