"""Reading one training run at an epoch budget: best and final values, area under the curve,
generalization gap and time to a target. Pure functions over its records."""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field

from core.kinds.train.records import TrainRecord
from core.kinds.train.spec import LOWER_IS_BETTER

RankBy = str  # "best" or "final"


def trained_values(
    records: Sequence[TrainRecord], metric: str, max_epoch: int
) -> list[tuple[int, float]]:
    """(epoch, value) of trained epochs up to max_epoch, finite values only."""
    out = []
    for r in records:
        value = r.metric(metric)
        if 1 <= r.epoch <= max_epoch and value is not None:
            out.append((r.epoch, value))
    return sorted(out)


def best_of(values: Sequence[tuple[int, float]], *, higher: bool) -> tuple[int, float] | None:
    """The best (epoch, value); the earliest epoch wins a tie."""
    if not values:
        return None
    pick = max if higher else min
    best_value = pick(v for _, v in values)
    return next((e, v) for e, v in values if v == best_value)


def reaches(value: float, target: float, *, higher: bool) -> bool:
    return value >= target if higher else value <= target


class TargetResult(BaseModel):
    value: float
    reached: bool
    epochs: int | None
    steps: int | None = None
    seconds: float | None = Field(description="Training seconds, evaluation excluded.")
    examples: int | None
    trained_epochs: int = Field(
        default=0,
        description="Epochs trained within the budget; when the target was not reached, the "
        "run's time to it is censored here (longer than this, not infinite).",
    )
    trained_steps: int = 0
    trained_seconds: float = 0.0
    eval_seconds: float = Field(default=0.0, description="Seconds evaluating, apart.")


def time_to_target(
    records: Sequence[TrainRecord], metric: str, target: float, *, higher: bool
) -> TargetResult:
    """Epochs, steps, seconds of training and examples seen until the metric reached target;
    when it never did, how long the run trained (where its time to target is censored)."""
    seconds = evaluating = 0.0
    epochs = steps = 0
    for r in sorted(records, key=lambda r: r.epoch):
        if r.epoch < 1:
            continue
        seconds += r.epoch_seconds
        evaluating += r.eval_seconds or 0.0
        epochs, steps = r.epoch, r.steps
        value = r.metric(metric)
        if value is not None and reaches(value, target, higher=higher):
            return TargetResult(
                value=target,
                reached=True,
                epochs=r.epoch,
                steps=r.steps,
                seconds=seconds,
                examples=r.examples_seen,
                trained_epochs=epochs,
                trained_steps=steps,
                trained_seconds=seconds,
                eval_seconds=evaluating,
            )
    return TargetResult(
        value=target,
        reached=False,
        epochs=None,
        seconds=None,
        examples=None,
        trained_epochs=epochs,
        trained_steps=steps,
        trained_seconds=seconds,
        eval_seconds=evaluating,
    )


def area_under_curve(values: Sequence[tuple[int, float]]) -> float | None:
    """The learning curve's area divided by its span: its average level (trapezoid rule).

    None unless the curve has every epoch from its first to its last.
    """
    if not values:
        return None
    epochs = [e for e, _ in values]
    if epochs != list(range(epochs[0], epochs[-1] + 1)):
        return None
    if len(values) == 1:
        return values[0][1]
    ys = [v for _, v in values]
    return float(np.trapezoid(ys, epochs)) / (epochs[-1] - epochs[0])


GAP_PAIRS = {
    name: (family, f"val_{family}")
    for family in ("accuracy", "loss", "mae", "rmse")
    for name in (family, f"val_{family}")
}


def generalization_gap(record: TrainRecord, metric: str) -> float | None:
    """Train minus validation of the metric's family (accuracy or loss) in this record."""
    train_name, val_name = GAP_PAIRS[metric]
    train, val = record.metric(train_name), record.metric(val_name)
    return None if train is None or val is None else train - val


@dataclass(frozen=True)
class RunAtBudget:
    """One run read at one epoch budget."""

    best: tuple[int, float] | None
    last: tuple[int, float] | None  # the latest trained (epoch, value), budget reached or not
    final: float | None  # the value at the budget itself
    auc: float | None
    gap: float | None
    target: TargetResult | None
    seconds: float

    def ranked(self, by: RankBy) -> float | None:
        if by == "final":
            return self.final
        return self.best[1] if self.best else None


def read_run(
    records: Sequence[TrainRecord], metric: str, budget: int, *, target: float | None = None
) -> RunAtBudget:
    higher = metric not in LOWER_IS_BETTER
    values = trained_values(records, metric, budget)
    best = best_of(values, higher=higher)
    by_epoch = {r.epoch: r for r in records}
    curve = sorted(
        (r.epoch, v) for r in records if r.epoch <= budget and (v := r.metric(metric)) is not None
    )
    trained = [r for r in records if 1 <= r.epoch <= budget]
    return RunAtBudget(
        best=best,
        last=values[-1] if values else None,
        final=values[-1][1] if values and values[-1][0] == budget else None,
        auc=area_under_curve(curve) if curve and curve[-1][0] == budget else None,
        gap=generalization_gap(by_epoch[best[0]], metric) if best else None,
        target=(
            time_to_target(trained, metric, target, higher=higher) if target is not None else None
        ),
        seconds=sum(r.epoch_seconds for r in trained),
    )


def test_at(records: Sequence[TrainRecord], metric: str, epoch: int) -> float | None:
    """The held-out test value at `epoch` (evaluated only at budgets and a run's end)."""
    return next((r.metric(metric) for r in records if r.epoch == epoch), None)
