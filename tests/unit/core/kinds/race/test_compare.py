"""The race's comparison: ranked by arrival, then by how close each run ended."""

import math
import uuid
from datetime import UTC, datetime

import pytest

from core.kinds.base import Comparand
from core.kinds.race.compare import ComparisonParams, RaceComparison, compare
from core.kinds.race.objectives import OBJECTIVES
from core.kinds.race.records import RaceRecord
from core.kinds.race.spec import RaceSpec
from core.models import RunStatus
from core.runs import RunInfo
from tests.conftest import run_info


def step(run_id: uuid.UUID, n: int, x: float, y: float, f: float) -> RaceRecord:
    return RaceRecord(
        run_id=run_id,
        step=n,
        x=x,
        y=y,
        f=f,
        learning_rate=0.01,
        seconds=0.001,
        time=datetime.now(UTC),
    )


def run(
    label: str, status: RunStatus = RunStatus.SUCCEEDED, diverged: int | None = None
) -> RunInfo:
    return run_info(label=label, optimizer={"name": label}, status=status, diverged_at=diverged)


def race(
    function: str, runs: list[RunInfo], records: dict[uuid.UUID, list[RaceRecord]]
) -> RaceComparison:
    spec = RaceSpec.model_validate({"objective": {"function": function}, "optimizers": ["sgd"]})
    return compare(Comparand(spec=spec, runs=runs, records=records, params=ComparisonParams()))


def test_race_ranks_by_arrival_then_by_distance_and_keeps_the_diverged() -> None:
    rosen = OBJECTIVES["rosenbrock"]
    fast, slow, stuck = run("fast"), run("slow"), run("stuck")
    lost = run("lost", RunStatus.DIVERGED, diverged=2)

    def path(r: RunInfo, points: list[tuple[float, float]]) -> list[RaceRecord]:
        return [step(r.id, i, x, y, float(rosen.f(x, y))) for i, (x, y) in enumerate(points)]

    records = {
        fast.id: path(fast, [(-1.5, 2.0), (0.999, 0.999), (1.0, 1.0)]),
        slow.id: path(slow, [(-1.5, 2.0), (0.5, 0.3), (1.005, 1.0)]),
        stuck.id: path(stuck, [(-1.5, 2.0), (-1.0, 1.0), (-0.9, 0.8)]),
        lost.id: path(lost, [(-1.5, 2.0), (-40.0, 90.0)]),
    }
    result = race("rosenbrock", [lost, stuck, slow, fast], records)
    assert [r.label for r in result.ranking] == ["fast", "slow", "stuck", "lost"]
    first = result.ranking[0]
    assert (first.arrived, first.steps_to_arrive, first.nearest) == (True, 1, (1.0, 1.0))
    ranking = result.ranking
    assert ranking[1].steps_to_arrive == 2
    assert not ranking[2].arrived
    assert ranking[2].distance == pytest.approx(math.hypot(1.9, 0.2))
    assert ranking[3].diverged_step == 2 and ranking[3].status == "diverged"
    assert [row["optimizer"] for row in result.table.rows] == ["fast", "slow", "stuck", "lost"]


def test_the_saddle_race_is_won_by_falling_off() -> None:
    quick, slow = run("quick"), run("slow")
    records = {
        quick.id: [step(quick.id, i, 1.0, y, 1.0 - y * y) for i, y in enumerate([0.0, 0.5, 1.5])],
        slow.id: [step(slow.id, i, 1.0, y, 1.0 - y * y) for i, y in enumerate([0.0, 0.1, 0.2])],
    }
    result = race("saddle", [slow, quick], records)
    assert [r.label for r in result.ranking] == ["quick", "slow"]
    assert result.ranking[0].steps_to_arrive == 2 and "escaped" in result.arrival
