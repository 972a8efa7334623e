"""One training run: the model trained on the dataset with the run's optimizer, batch size
and seed, to its epoch budget. Runs of a job that differ only in their optimizer may train
together in one compiled step (`run_group`), unless the job says `"fuse": false`."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.kinds.base import JobSpec
from core.kinds.train.spec import TrainSpec
from core.runs import RunInfo
from worker.runs import RunContext, RunHooks, RunOutcome
from worker.training.run import TrainingPlan, fuse_key, train, train_group


def plan_of(ctx: RunContext, **changes: Any) -> TrainingPlan:
    """The training plan of the run, from its job's spec (a TrainSpec or a kind deriving it)."""
    spec = ctx.spec
    assert isinstance(spec, TrainSpec)
    assert ctx.run.seed is not None and ctx.run.batch_size is not None
    return TrainingPlan(
        run_id=ctx.run.id,
        dataset=spec.dataset,
        model=spec.model,
        optimizer=ctx.run.optimizer,
        batch_size=ctx.run.batch_size,
        epochs=ctx.run.budget,
        seed=ctx.run.seed,
        evaluate_initial=spec.evaluate_initial,
        test_epochs=tuple(spec.epochs),
        store=ctx.store,
        keep_trained_model=ctx.keep_trained_model,
        uploads=ctx.uploads,
        task=spec.task or "classification",
        loss=spec.loss or "sparse_categorical_crossentropy",
        steps_per_execution=ctx.steps_per_execution,
        **changes,
    )


def run(ctx: RunContext) -> RunOutcome:
    return train(
        plan_of(ctx),
        cache_dir=ctx.cache_dir,
        hooks=ctx.hooks,
        fashion_mnist_dir=ctx.fashion_mnist_dir,
    )


def group_key(spec: JobSpec, run: RunInfo) -> str | None:
    """Runs with the same key may train together; None: this one trains alone."""
    assert isinstance(spec, TrainSpec)
    return fuse_key(plan_of(looking_at(spec, run))) if spec.fuse else None


def run_group(contexts: Sequence[RunContext]) -> list[RunOutcome]:
    """Train runs with the same `group_key` together, each reporting through its own hooks."""
    return group_of([plan_of(ctx) for ctx in contexts], contexts)


def group_of(plans: Sequence[TrainingPlan], contexts: Sequence[RunContext]) -> list[RunOutcome]:
    first = contexts[0]
    return train_group(
        plans,
        [ctx.hooks for ctx in contexts],
        cache_dir=first.cache_dir,
        fashion_mnist_dir=first.fashion_mnist_dir,
        fuse_max=len(plans),
    )


_QUIET = RunHooks(on_start=lambda sha, env: None, on_records=list, cancel_requested=bool)


def looking_at(spec: JobSpec, run: RunInfo) -> RunContext:
    """A context to plan a run from, for grouping (nothing is trained or reported)."""
    return RunContext(run=run, spec=spec, hooks=_QUIET, cache_dir=Path("."), store=None)
