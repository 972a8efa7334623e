"""The 2-D optimizer race: a Keras optimizer steps the two variables of a test function."""

import hashlib
import math
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import keras
import numpy as np

from core.objectives import OBJECTIVES
from core.records import EpochRecord
from worker.backend import describe_environment
from worker.training.optimizers import build_optimizer, current_learning_rate
from worker.training.run import TrainingHooks, TrainingOutcome

# Coordinates beyond this are a run that left the picture for good: it diverged.
ESCAPE_BOUND = 1e6


@dataclass(frozen=True)
class RacePlan:
    run_id: uuid.UUID
    function: str
    start: tuple[float, float]
    optimizer: dict[str, Any]
    steps: int
    flush_every: int = 100
    flush_seconds: float = 0.25


class RaceOutcome(TrainingOutcome):
    def summary(self) -> dict[str, Any]:
        last = self.records[-1] if self.records else None
        return {
            "steps_completed": self.epochs_completed,
            "final": {"x": last.x, "y": last.y, "f": last.loss} if last else None,
        }


def race(plan: RacePlan, *, hooks: TrainingHooks) -> RaceOutcome:
    """Step from the start for plan.steps steps; every step is a record (step 0: the start).

    Records are handed over in chunks (hooks.on_records) so a 500-step run is a handful of
    writes; a cancel request is checked at every chunk.
    """
    objective = OBJECTIVES[plan.function]
    start = np.asarray(plan.start, dtype="float32")
    point = keras.Variable(start, name="xy")
    optimizer = build_optimizer(plan.optimizer)
    optimizer.build([point])
    initial_sha = hashlib.sha256(start.tobytes()).hexdigest()
    hooks.on_start(initial_sha, describe_environment())

    outcome = RaceOutcome("succeeded", 0, initial_sha)
    pending: list[EpochRecord] = []
    last_flush = time.perf_counter()

    def flush() -> None:
        nonlocal last_flush
        if pending:
            if hooks.on_records is not None:
                hooks.on_records(list(pending))
            else:
                for record in pending:
                    hooks.on_record(record)
            outcome.records.extend(pending)
            outcome.epochs_completed = pending[-1].epoch
            pending.clear()
        last_flush = time.perf_counter()

    def add(step: int, x: float, y: float, seconds: float) -> None:
        pending.append(
            EpochRecord(
                run_id=plan.run_id,
                epoch=step,
                loss=float(objective.f(x, y)),
                accuracy=None,
                val_loss=None,
                val_accuracy=None,
                learning_rate=current_learning_rate(optimizer),
                epoch_seconds=seconds,
                examples_seen=0,
                time=datetime.now(UTC),
                steps=step,
                x=x,
                y=y,
            )
        )

    add(0, float(start[0]), float(start[1]), 0.0)
    for step in range(1, plan.steps + 1):
        began = time.perf_counter()
        x, y = (float(v) for v in keras.ops.convert_to_numpy(point))
        gradient = np.asarray(objective.grad(x, y), dtype="float32")
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(gradient), point)])
        x, y = (float(v) for v in keras.ops.convert_to_numpy(point))
        if not (math.isfinite(x) and math.isfinite(y)):
            outcome.status, outcome.diverged_epoch = "diverged", step
            break
        add(step, x, y, time.perf_counter() - began)
        if max(abs(x), abs(y)) > ESCAPE_BOUND or not math.isfinite(pending[-1].loss or 0.0):
            outcome.status, outcome.diverged_epoch = "diverged", step
            break
        if (
            len(pending) >= plan.flush_every
            or time.perf_counter() - last_flush > plan.flush_seconds
        ):
            flush()
            if hooks.cancel_requested():
                outcome.status = "cancelled"
                break
    flush()
    return outcome
