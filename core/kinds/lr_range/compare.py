"""The range test's comparison: per run and per arm (optimizer x batch size, over seeds) the
suggested learning rates, the usable interval and where the test blew up."""

import math
import statistics
import uuid
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from core.kinds.base import ArmName, Column, Comparand, Table
from core.kinds.lr_range.records import LrRangeRecord
from core.kinds.lr_range.spec import LrRangeSpec, RangeSpec
from core.kinds.lr_range.suggest import Suggestion, suggest
from core.runs import RunInfo

MEANING = (
    "steepest: where the smoothed loss falls fastest per decade of learning rate; "
    "minimum / 10: a tenth of the learning rate at the smoothed loss's minimum (fastai); "
    "usable: from where the loss has made a tenth of its fall to the minimum (a tuning job "
    "takes it as its search interval with from_range_test); blew up at: where the smoothed "
    "loss passed stop_factor times its best, the test's normal end. Over several seeds, each "
    "value is the geometric median of the seeds' (the median of their logarithms)."
)


class ComparisonParams(BaseModel):
    optimizer: list[ArmName] = Field(
        default_factory=list,
        max_length=64,
        description="Only these arms, by label or optimizer name (repeatable).",
    )


class PlotParams(BaseModel):
    pass


class RangeRun(BaseModel):
    run_id: uuid.UUID
    label: str
    optimizer: dict[str, Any]
    seed: int | None
    batch_size: int | None
    status: str
    error: str | None
    steps: int = Field(description="Steps recorded.")
    stopped_early: bool
    suggestion: Suggestion


class RangeArm(BaseModel):
    label: str
    optimizer: str = Field(description="The optimizer's name.")
    batch_size: int | None
    seeds: list[int]
    suggestion: Suggestion


class LrRangeComparison(BaseModel):
    kind: Literal["lr_range"] = "lr_range"
    lr_range: RangeSpec
    meaning: str
    arms: list[RangeArm]
    runs: list[RangeRun]
    table: Table


def stopped_early(run: RunInfo) -> bool:
    return bool((run.summary or {}).get("stopped_early"))


def read_run(run: RunInfo, records: Sequence[LrRangeRecord]) -> RangeRun:
    ordered = sorted(records, key=lambda r: r.step)
    early = stopped_early(run)
    return RangeRun(
        run_id=run.id,
        label=run.label,
        optimizer=run.optimizer,
        seed=run.seed,
        batch_size=run.batch_size,
        status=run.status.value,
        error=run.error,
        steps=len(ordered),
        stopped_early=early,
        suggestion=suggest([(r.learning_rate, r.smoothed_loss) for r in ordered], stopped=early),
    )


def _log_median(values: Sequence[float | None]) -> float | None:
    found = [math.log(v) for v in values if v is not None and v > 0]
    return math.exp(statistics.median(found)) if found else None


def _over_seeds(found: Sequence[Suggestion]) -> Suggestion:
    if len(found) == 1:
        return found[0]
    usable = [s.usable for s in found if s.usable]
    low = _log_median([u[0] for u in usable])
    high = _log_median([u[1] for u in usable])
    losses = [s.start_loss for s in found if s.start_loss is not None]
    mins = [s.min_loss for s in found if s.min_loss is not None]
    return Suggestion(
        steepest=_log_median([s.steepest for s in found]),
        minimum=_log_median([s.minimum for s in found]),
        minimum_div_10=_log_median([s.minimum_div_10 for s in found]),
        usable=[low, high] if low is not None and high is not None and low < high else None,
        blew_up_at=_log_median([s.blew_up_at for s in found]),
        start_loss=statistics.median(losses) if losses else None,
        min_loss=statistics.median(mins) if mins else None,
    )


def compare(comparand: Comparand) -> LrRangeComparison:
    spec, params = comparand.spec, comparand.params
    assert isinstance(spec, LrRangeSpec) and isinstance(params, ComparisonParams)
    runs = [
        r
        for r in comparand.runs
        if not params.optimizer
        or r.label in params.optimizer
        or r.optimizer.get("name") in params.optimizer
    ]
    rows = [read_run(r, comparand.records.get(r.id, [])) for r in runs]
    arms: dict[str, list[RangeRun]] = {}
    for row in rows:
        arms.setdefault(row.label, []).append(row)
    found = [
        RangeArm(
            label=label,
            optimizer=str(members[0].optimizer.get("name")),
            batch_size=members[0].batch_size,
            seeds=sorted(m.seed for m in members if m.seed is not None),
            suggestion=_over_seeds(
                [m.suggestion for m in members if m.status in ("succeeded", "running")]
                or [m.suggestion for m in members]
            ),
        )
        for label, members in arms.items()
    ]
    return LrRangeComparison(
        lr_range=spec.lr_range,
        meaning=MEANING,
        arms=found,
        runs=rows,
        table=_table(found),
    )


def _g(value: float | None) -> str | None:
    return None if value is None else f"{value:.3g}"


def _table(arms: Sequence[RangeArm]) -> Table:
    columns = [
        Column(key="arm", title="arm"),
        Column(key="seeds", title="seeds"),
        Column(key="steepest", title="steepest"),
        Column(key="minimum_div_10", title="minimum / 10"),
        Column(key="usable", title="usable interval"),
        Column(key="blew_up_at", title="blew up at"),
    ]
    rows = [
        {
            "arm": arm.label,
            "seeds": len(arm.seeds),
            "steepest": _g(arm.suggestion.steepest),
            "minimum_div_10": _g(arm.suggestion.minimum_div_10),
            "usable": (
                f"{_g(arm.suggestion.usable[0])} to {_g(arm.suggestion.usable[1])}"
                if arm.suggestion.usable
                else None
            ),
            "blew_up_at": _g(arm.suggestion.blew_up_at) or "did not",
        }
        for arm in arms
    ]
    return Table(
        title="learning-rate range test: suggested learning rates",
        columns=columns,
        rows=rows,
        note=MEANING,
    )
