"""The learning-rate range test: from the seed's initial weights, one mini-batch step at each
learning rate of the exponential schedule, in the seed's example order."""

import math
import time
from datetime import UTC, datetime

import numpy as np

from core.kinds.lr_range.records import LrRangeRecord
from core.kinds.lr_range.schedule import Smoother, learning_rates
from core.kinds.lr_range.spec import LrRangeSpec
from worker.backend import describe_environment
from worker.runs import RunContext, RunOutcome
from worker.training.models import weights_sha256
from worker.training.optimizers import build_optimizer
from worker.training.run import TrainingPlan, epoch_order, prepare

FLUSH_EVERY = 50  # records handed over at once
FLUSH_SECONDS = 0.5


def run(ctx: RunContext) -> RunOutcome:
    """Every step is a record (learning rate, loss, smoothed loss). The test ends early when
    the smoothed loss passes stop_factor times its best or is not finite: that is its normal
    end (the run succeeds, `stopped_early` in its summary), not a divergence. A retried test
    replays from step 1: it is deterministic, and the stored steps are skipped."""
    spec = ctx.spec
    assert isinstance(spec, LrRangeSpec)
    assert ctx.run.seed is not None and ctx.run.batch_size is not None
    test = spec.lr_range
    plan = TrainingPlan(
        run_id=ctx.run.id,
        dataset=spec.dataset,
        model=spec.model,
        optimizer=ctx.run.optimizer,
        batch_size=ctx.run.batch_size,
        epochs=1,
        seed=ctx.run.seed,
        store=ctx.store,
        keep_trained_model=False,
        uploads=ctx.uploads,
        task=spec.task or "classification",
        loss=spec.loss or "sparse_categorical_crossentropy",
        evaluate_test=False,
    )
    data, objective, model = prepare(
        plan, cache_dir=ctx.cache_dir, fashion_mnist_dir=ctx.fashion_mnist_dir
    )
    initial_sha = weights_sha256(model)
    rates = learning_rates(test.min, test.max, ctx.run.budget)
    optimizer = build_optimizer(dict(ctx.run.optimizer) | {"learning_rate": rates[0]})
    model.compile(optimizer=optimizer, loss=objective.loss())
    ctx.hooks.on_start(initial_sha, describe_environment())

    outcome = RunOutcome("succeeded", 0, initial_sha)
    pending: list[LrRangeRecord] = []
    last_flush = time.perf_counter()

    def flush() -> None:
        nonlocal last_flush
        if pending:
            ctx.hooks.on_records(list(pending))
            outcome.records.extend(pending)
            outcome.completed = pending[-1].step
            pending.clear()
        last_flush = time.perf_counter()

    n = len(data.x_train)
    size = plan.batch_size
    per_epoch = math.ceil(n / size)
    smoother = Smoother(test.smoothing, test.stop_factor)
    order = np.arange(n)
    stopped: tuple[int, float, str] | None = None
    for index, rate in enumerate(rates):
        epoch, batch = divmod(index, per_epoch)
        if batch == 0:
            order = epoch_order(plan.seed, epoch, n)
        chosen = order[batch * size : (batch + 1) * size]
        began = time.perf_counter()
        optimizer.learning_rate = rate
        loss = float(np.asarray(model.train_on_batch(data.x_train[chosen], data.y_train[chosen])))
        smoothed, stop = smoother.add(loss)
        step = index + 1
        pending.append(
            LrRangeRecord(
                run_id=ctx.run.id,
                step=step,
                learning_rate=rate,
                loss=loss if math.isfinite(loss) else None,
                smoothed_loss=smoothed,
                seconds=time.perf_counter() - began,
                time=datetime.now(UTC),
            )
        )
        if stop:
            why = (
                "the loss was not finite"
                if smoothed is None
                else f"the smoothed loss passed {test.stop_factor:g} times its best"
            )
            stopped = (step, rate, why)
            break
        if len(pending) >= FLUSH_EVERY or time.perf_counter() - last_flush > FLUSH_SECONDS:
            flush()
            if ctx.hooks.cancel_requested():
                outcome.status = "cancelled"
                outcome.reason = f"cancelled while running, after step {outcome.completed}"
                break
    flush()
    outcome.summary = {"steps_completed": outcome.completed, "stopped_early": stopped is not None}
    if stopped is not None:
        step, rate, why = stopped
        outcome.summary |= {
            "stopped_at_step": step,
            "stopped_at_learning_rate": rate,
            "stopped_because": why,
        }
    return outcome
