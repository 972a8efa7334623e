"""One training run: the model trained on the dataset with the run's optimizer, batch size
and seed, to its epoch budget."""

from typing import Any

from core.kinds.train.spec import TrainSpec
from worker.runs import RunContext, RunOutcome
from worker.training.run import TrainingPlan, train


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
        **changes,
    )


def run(ctx: RunContext) -> RunOutcome:
    return train(
        plan_of(ctx),
        cache_dir=ctx.cache_dir,
        hooks=ctx.hooks,
        fashion_mnist_dir=ctx.fashion_mnist_dir,
    )
