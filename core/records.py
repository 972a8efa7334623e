"""One epoch of one run, as the worker reports it and clients read it."""

import math
import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class EpochRecord(BaseModel):
    """Metrics at the end of an epoch (epoch 0: before training).

    In a race a record is one step: `epoch` is the step, `loss` is f(x, y) and x, y are set.
    """

    model_config = ConfigDict(frozen=True)

    run_id: uuid.UUID
    epoch: int
    loss: float | None
    accuracy: float | None
    val_loss: float | None
    val_accuracy: float | None
    learning_rate: float | None
    epoch_seconds: float
    examples_seen: int
    time: datetime
    steps: int | None = None  # optimizer steps taken so far
    x: float | None = None
    y: float | None = None

    def metric(self, name: str) -> float | None:
        value: Any = getattr(self, name)
        return value if isinstance(value, float) and math.isfinite(value) else None


class SequencedRecord(BaseModel):
    """A record with its place in the job's metrics sequence: the cursor clients pass back."""

    model_config = ConfigDict(frozen=True)

    seq: int
    record: EpochRecord
