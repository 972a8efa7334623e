"""One countdown run: a record a step, from learning rate x steps down to zero."""

from datetime import UTC, datetime

from core.kinds.countdown import CountdownRecord  # type: ignore[import-not-found]

from worker.runs import RunContext, RunOutcome


def run(ctx: RunContext) -> RunOutcome:
    rate = float(ctx.run.optimizer["learning_rate"])
    ctx.hooks.on_start("countdown", {"kind": ctx.spec.kind})
    outcome = RunOutcome("succeeded", 0, "countdown")
    for step in range(ctx.run.budget + 1):
        value = rate * (ctx.run.budget - step)
        record = CountdownRecord(run_id=ctx.run.id, step=step, value=value, time=datetime.now(UTC))
        ctx.hooks.on_records([record])
        outcome.records.append(record)
        outcome.completed = step
    outcome.summary = {"steps_completed": outcome.completed}
    return outcome
