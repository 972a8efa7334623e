"""Comparison of runs: pure functions over their stored epoch records."""

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from core.records import EpochRecord
from core.spec import LOWER_IS_BETTER


@dataclass(frozen=True)
class RunFacts:
    """What the comparison needs to know of a run besides its epochs."""

    id: uuid.UUID
    index: int
    label: str
    optimizer: dict[str, Any]
    batch_size: int
    epochs: int
    seed: int
    status: str
    error: str | None = None
    diverged_epoch: int | None = None


class AtBudget(BaseModel):
    epochs: int
    best: float | None
    best_epoch: int | None
    final: float | None
    reached: bool


class TargetResult(BaseModel):
    value: float
    reached: bool
    epochs: int | None
    seconds: float | None
    examples: int | None


class RankedRun(BaseModel):
    rank: int
    run_id: uuid.UUID
    label: str
    optimizer: dict[str, Any]
    batch_size: int
    epochs: int
    seed: int
    status: str
    error: str | None
    diverged_epoch: int | None
    best: float | None
    best_epoch: int | None
    final: float | None
    final_epoch: int | None
    seconds: float
    budgets: list[AtBudget]
    target: TargetResult | None


class Comparison(BaseModel):
    metric: str
    higher_is_better: bool
    epochs: int | None
    target: float | None
    ranking: list[RankedRun]


def _values(records: Sequence[EpochRecord], metric: str, max_epoch: int) -> list[tuple[int, float]]:
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


def time_to_target(
    records: Sequence[EpochRecord], metric: str, target: float, *, higher: bool
) -> TargetResult:
    """Epochs, seconds of training and examples seen until the metric first reached target."""
    seconds = 0.0
    for r in sorted(records, key=lambda r: r.epoch):
        if r.epoch < 1:
            continue
        seconds += r.epoch_seconds
        value = r.metric(metric)
        if value is not None and reaches(value, target, higher=higher):
            return TargetResult(
                value=target,
                reached=True,
                epochs=r.epoch,
                seconds=seconds,
                examples=r.examples_seen,
            )
    return TargetResult(value=target, reached=False, epochs=None, seconds=None, examples=None)


def _sort_key(row: RankedRun, *, higher: bool) -> tuple[int, float, float, int]:
    def signed(value: float | None) -> float:
        if value is None:
            return math.inf
        return -value if higher else value

    return (0 if row.best is not None else 1, signed(row.best), signed(row.final), row.rank)


def compare_runs(
    runs: Sequence[RunFacts],
    records: dict[uuid.UUID, list[EpochRecord]],
    *,
    metric: str,
    budgets: Sequence[int],
    at_epochs: int | None = None,
    target: float | None = None,
) -> Comparison:
    """Every run ranked best first by its best value of `metric` within `at_epochs` epochs.

    Loss metrics rank lowest first. Runs without a value (failed before their first epoch)
    are ranked last and keep their status and error, so nothing silently disappears.
    """
    higher = metric not in LOWER_IS_BETTER
    rows: list[RankedRun] = []
    for run in runs:
        own = records.get(run.id, [])
        horizon = at_epochs or run.epochs
        values = _values(own, metric, horizon)
        best = best_of(values, higher=higher)
        trained = [r for r in own if 1 <= r.epoch <= horizon]
        rows.append(
            RankedRun(
                rank=run.index,
                run_id=run.id,
                label=run.label,
                optimizer=run.optimizer,
                batch_size=run.batch_size,
                epochs=run.epochs,
                seed=run.seed,
                status=run.status,
                error=run.error,
                diverged_epoch=run.diverged_epoch,
                best=best[1] if best else None,
                best_epoch=best[0] if best else None,
                final=values[-1][1] if values else None,
                final_epoch=values[-1][0] if values else None,
                seconds=sum(r.epoch_seconds for r in trained),
                budgets=[_at_budget(own, metric, b, higher=higher) for b in budgets],
                target=(
                    time_to_target(trained, metric, target, higher=higher)
                    if target is not None
                    else None
                ),
            )
        )
    rows.sort(key=lambda row: _sort_key(row, higher=higher))
    ranked = [row.model_copy(update={"rank": i + 1}) for i, row in enumerate(rows)]
    return Comparison(
        metric=metric, higher_is_better=higher, epochs=at_epochs, target=target, ranking=ranked
    )


def _at_budget(
    records: Sequence[EpochRecord], metric: str, budget: int, *, higher: bool
) -> AtBudget:
    values = _values(records, metric, budget)
    best = best_of(values, higher=higher)
    return AtBudget(
        epochs=budget,
        best=best[1] if best else None,
        best_epoch=best[0] if best else None,
        final=values[-1][1] if values and values[-1][0] == budget else None,
        reached=bool(values) and values[-1][0] == budget,
    )
