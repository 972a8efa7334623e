"""One run of a tuned comparison: a training run. In phase 1 (the search) it pauses at each
pruning rung it has not been cleared past, and never touches the test set; in phase 2 (the
final seeds) it is an ordinary run, tested at its budget. Trials of one seed and phase at the
same rung train together, as a training job's arms do."""

from collections.abc import Sequence

from core.kinds.base import JobSpec
from core.kinds.tune.spec import TuneSpec
from core.runs import RunInfo
from worker.kinds.train import group_of, looking_at, plan_of
from worker.runs import RunContext, RunOutcome
from worker.training.run import TrainingPlan, fuse_key, train


def tuned_plan(ctx: RunContext) -> TrainingPlan:
    spec = ctx.spec
    assert isinstance(spec, TuneSpec)
    searching = ctx.run.phase == 1
    rungs = spec.tuning.prune.rungs if spec.tuning.prune and searching else []
    cleared = ctx.run.cleared_at or 0
    return plan_of(
        ctx,
        evaluate_test=not searching,
        pause_at=tuple(r for r in rungs if r > cleared),
    )


def run(ctx: RunContext) -> RunOutcome:
    return train(
        tuned_plan(ctx),
        cache_dir=ctx.cache_dir,
        hooks=ctx.hooks,
        fashion_mnist_dir=ctx.fashion_mnist_dir,
    )


def group_key(spec: JobSpec, run: RunInfo) -> str | None:
    assert isinstance(spec, TuneSpec)
    return fuse_key(tuned_plan(looking_at(spec, run))) if spec.fuse else None


def run_group(contexts: Sequence[RunContext]) -> list[RunOutcome]:
    return group_of([tuned_plan(ctx) for ctx in contexts], contexts)
