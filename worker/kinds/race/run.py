"""The 2-D optimizer race: a Keras optimizer steps the two variables of a test function."""

import hashlib
import math
import time
from datetime import UTC, datetime

import keras
import numpy as np

from core.kinds.race.objectives import OBJECTIVES
from core.kinds.race.records import RaceRecord
from core.kinds.race.spec import RaceSpec
from worker.backend import describe_environment
from worker.runs import RunContext, RunOutcome
from worker.training.optimizers import build_optimizer, current_learning_rate

# Coordinates beyond this are a run that left the picture for good: it diverged.
ESCAPE_BOUND = 1e6
FLUSH_EVERY = 100  # records handed over at once
FLUSH_SECONDS = 0.25


def run(ctx: RunContext) -> RunOutcome:
    """Step from the start for the run's budget of steps; every step is a record (step 0: the
    start). Records are handed over in chunks, so a 500-step run is a handful of writes; a
    cancel request is checked at every chunk. A retried race replays from step 0: it is
    deterministic and takes seconds, and the stored steps are skipped."""
    spec = ctx.spec
    assert isinstance(spec, RaceSpec)
    hooks = ctx.hooks
    objective = OBJECTIVES[spec.objective.function]
    start = np.asarray(spec.objective.start_point, dtype="float32")
    point = keras.Variable(start, name="xy")
    optimizer = build_optimizer(ctx.run.optimizer)
    optimizer.build([point])
    initial_sha = hashlib.sha256(start.tobytes()).hexdigest()
    hooks.on_start(initial_sha, describe_environment())

    outcome = RunOutcome("succeeded", 0, initial_sha)
    pending: list[RaceRecord] = []
    last_flush = time.perf_counter()

    def flush() -> None:
        nonlocal last_flush
        if pending:
            hooks.on_records(list(pending))
            outcome.records.extend(pending)
            outcome.completed = pending[-1].step
            pending.clear()
        last_flush = time.perf_counter()

    def add(step: int, x: float, y: float, seconds: float) -> None:
        pending.append(
            RaceRecord(
                run_id=ctx.run.id,
                step=step,
                x=x,
                y=y,
                f=float(objective.f(x, y)),
                learning_rate=current_learning_rate(optimizer),
                seconds=seconds,
                time=datetime.now(UTC),
            )
        )

    def diverged(step: int) -> None:
        outcome.status, outcome.diverged_at = "diverged", step
        outcome.reason = f"left the plane (|x| or |y| beyond {ESCAPE_BOUND:g}) at step {step}"

    add(0, float(start[0]), float(start[1]), 0.0)
    for step in range(1, ctx.run.budget + 1):
        began = time.perf_counter()
        x, y = (float(v) for v in keras.ops.convert_to_numpy(point))
        gradient = np.asarray(objective.grad(x, y), dtype="float32")
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(gradient), point)])
        x, y = (float(v) for v in keras.ops.convert_to_numpy(point))
        if not (math.isfinite(x) and math.isfinite(y)):
            diverged(step)
            break
        add(step, x, y, time.perf_counter() - began)
        if max(abs(x), abs(y)) > ESCAPE_BOUND or not math.isfinite(pending[-1].f or 0.0):
            diverged(step)
            break
        if len(pending) >= FLUSH_EVERY or time.perf_counter() - last_flush > FLUSH_SECONDS:
            flush()
            if hooks.cancel_requested():
                outcome.status = "cancelled"
                outcome.reason = f"cancelled while running, after step {outcome.completed}"
                break
    flush()
    last = outcome.records[-1] if outcome.records else None
    outcome.summary = {
        "steps_completed": outcome.completed,
        "final": {"x": last.x, "y": last.y, "f": last.f} if last else None,
    }
    return outcome
