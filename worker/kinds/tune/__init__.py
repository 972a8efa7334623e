"""One run of a tuned comparison: a training run. In phase 1 (the search) it pauses at each
pruning rung it has not been cleared past, and never touches the test set; in phase 2 (the
final seeds) it is an ordinary run, tested at its budget."""

from core.kinds.tune.spec import TuneSpec
from worker.kinds.train import plan_of
from worker.runs import RunContext, RunOutcome
from worker.training.run import train


def run(ctx: RunContext) -> RunOutcome:
    spec = ctx.spec
    assert isinstance(spec, TuneSpec)
    searching = ctx.run.phase == 1
    rungs = spec.tuning.prune.rungs if spec.tuning.prune and searching else []
    cleared = ctx.run.cleared_at or 0
    plan = plan_of(
        ctx,
        evaluate_test=not searching,
        pause_at=tuple(r for r in rungs if r > cleared),
    )
    return train(
        plan, cache_dir=ctx.cache_dir, hooks=ctx.hooks, fashion_mnist_dir=ctx.fashion_mnist_dir
    )
