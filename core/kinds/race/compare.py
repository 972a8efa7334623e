"""The race's comparison: runs ranked by when they arrived (within tolerance of a minimum, or
off the saddle), then by how close they ended; those that never arrived are ranked too."""

import math
import uuid
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from core.errors import NotFound
from core.kinds.base import ArmName, Column, Comparand, Table
from core.kinds.race.objectives import OBJECTIVES, Objective
from core.kinds.race.records import RaceRecord
from core.kinds.race.spec import RaceSpec
from core.runs import RunInfo


class ComparisonParams(BaseModel):
    optimizer: list[ArmName] = Field(
        default_factory=list,
        max_length=64,
        description="Only these arms, by label or optimizer name (repeatable).",
    )
    tolerance: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="Distance to a minimum that counts as arrived (default: the job's).",
    )


class PlotParams(BaseModel):
    pass


class RaceRow(BaseModel):
    rank: int
    run_id: uuid.UUID
    label: str
    optimizer: dict[str, Any]
    status: str
    error: str | None
    steps: int
    x: float | None
    y: float | None
    f: float | None
    best_f: float | None
    nearest: tuple[float, float] | None
    distance: float | None
    arrived: bool
    steps_to_arrive: int | None
    diverged_step: int | None


class RaceComparison(BaseModel):
    kind: Literal["race"] = "race"
    function: str
    formula: str
    goal: Literal["reach", "escape"]
    points: list[tuple[float, float]]
    start: tuple[float, float]
    tolerance: float
    arrival: str
    ranking: list[RaceRow]
    table: Table


def _arrived(objective: Objective, tolerance: float, r: RaceRecord) -> bool:
    if r.x is None or r.y is None or r.f is None:
        return False
    if objective.goal == "escape":
        assert objective.escape_below is not None
        return r.f < objective.escape_below
    return objective.distance(r.x, r.y)[0] <= tolerance


def _row(
    run: RunInfo, path: Sequence[RaceRecord], objective: Objective, tolerance: float
) -> RaceRow:
    last = path[-1] if path else None
    finite = [v for r in path if (v := r.metric("f")) is not None]
    where = (
        objective.distance(last.x, last.y)
        if last and last.x is not None and last.y is not None
        else None
    )
    first_arrival = next((r.step for r in path if _arrived(objective, tolerance, r)), None)
    return RaceRow(
        rank=run.index,
        run_id=run.id,
        label=run.label,
        optimizer=run.optimizer,
        status=run.status.value,
        error=run.error,
        steps=last.step if last else 0,
        x=last.x if last else None,
        y=last.y if last else None,
        f=last.metric("f") if last else None,
        best_f=min(finite) if finite else None,
        nearest=where[1] if where else None,
        distance=where[0] if where else None,
        arrived=first_arrival is not None,
        steps_to_arrive=first_arrival,
        diverged_step=run.diverged_at,
    )


def compare(comparand: Comparand) -> RaceComparison:
    spec, params = comparand.spec, comparand.params
    assert isinstance(spec, RaceSpec) and isinstance(params, ComparisonParams)
    objective = OBJECTIVES[spec.objective.function]
    tolerance = params.tolerance or spec.tolerance
    runs = list(comparand.runs)
    if params.optimizer:
        known = {r.label for r in runs} | {r.optimizer["name"] for r in runs}
        unknown = [o for o in params.optimizer if o not in known]
        if unknown:
            raise NotFound(
                f"no arm {', '.join(map(repr, unknown))}; arms: {', '.join(sorted(known))}"
            )
        runs = [
            r
            for r in runs
            if r.label in params.optimizer or r.optimizer["name"] in params.optimizer
        ]
    rows = []
    for run in runs:
        path = [r for r in comparand.records.get(run.id, []) if r.x is not None and r.y is not None]
        rows.append(_row(run, path, objective, tolerance))

    def key(row: RaceRow) -> tuple[float, float, float, int]:
        closeness = (
            (row.f if row.f is not None else math.inf)
            if objective.goal == "escape"
            else (row.distance if row.distance is not None else math.inf)
        )
        return (
            row.steps_to_arrive if row.steps_to_arrive is not None else math.inf,
            closeness,
            row.best_f if row.best_f is not None else math.inf,
            row.rank,
        )

    rows.sort(key=key)
    ranking = [row.model_copy(update={"rank": i + 1}) for i, row in enumerate(rows)]
    arrival = (
        f"escaped the saddle: f(x, y) below {objective.escape_below}"
        if objective.goal == "escape"
        else f"within {tolerance} of a minimum"
    )
    return RaceComparison(
        function=objective.name,
        formula=objective.formula,
        goal=objective.goal,
        points=list(objective.points),
        start=spec.objective.start_point,
        tolerance=tolerance,
        arrival=arrival,
        ranking=ranking,
        table=_table(objective, ranking, arrival),
    )


def _table(objective: Objective, ranking: Sequence[RaceRow], arrival: str) -> Table:
    def short(value: float | None) -> str:
        return "-" if value is None else f"{value:.4g}"

    return Table(
        title=f"{objective.name}: f = {objective.formula}",
        columns=[
            Column(key="rank", title="rank"),
            Column(key="optimizer", title="optimizer"),
            Column(key="status", title="status"),
            Column(key="arrived", title="arrived at step"),
            Column(key="distance", title="distance"),
            Column(key="f", title="f"),
            Column(key="notes", title="notes"),
        ],
        rows=[
            {
                "rank": row.rank,
                "optimizer": row.label,
                "status": row.status,
                "arrived": row.steps_to_arrive,
                "distance": short(row.distance),
                "f": short(row.f),
                "notes": row.error or "",
            }
            for row in ranking
        ],
        note=f"arrived: {arrival}",
    )
