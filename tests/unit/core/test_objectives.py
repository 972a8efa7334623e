"""The race's test functions: known minima, and gradients that agree with the functions."""

import math
import uuid
from datetime import UTC, datetime

import numpy as np
import pytest

from core.compare import RunFacts, compare_race
from core.objectives import OBJECTIVES
from core.records import EpochRecord
from core.spec import RACE_EXAMPLE, RaceSpec, parse_job


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_gradients_agree_with_central_differences(name: str) -> None:
    objective = OBJECTIVES[name]
    rng = np.random.default_rng(1)
    (x0, x1), (y0, y1) = objective.window
    h = 1e-6
    for x, y in zip(rng.uniform(x0, x1, 20), rng.uniform(y0, y1, 20), strict=True):
        dx = (objective.f(x + h, y) - objective.f(x - h, y)) / (2 * h)
        dy = (objective.f(x, y + h) - objective.f(x, y - h)) / (2 * h)
        gx, gy = objective.grad(float(x), float(y))
        assert gx == pytest.approx(dx, rel=1e-4, abs=1e-4)
        assert gy == pytest.approx(dy, rel=1e-4, abs=1e-4)


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_known_points_are_stationary_and_minima_are_zero(name: str) -> None:
    objective = OBJECTIVES[name]
    for x, y in objective.points:
        gx, gy = objective.grad(x, y)
        assert math.hypot(gx, gy) < 1e-3
        if objective.minimum_value is not None:
            assert objective.f(x, y) == pytest.approx(objective.minimum_value, abs=1e-9)
            # A minimum: every nearby point is higher.
            for dx, dy in ((1e-2, 0), (-1e-2, 0), (0, 1e-2), (0, -1e-2)):
                assert objective.f(x + dx, y + dy) > objective.f(x, y)
    (x0, x1), (y0, y1) = objective.window
    sx, sy = objective.start
    assert x0 <= sx <= x1 and y0 <= sy <= y1


def test_the_saddle_has_no_minimum_and_is_won_by_escaping() -> None:
    saddle = OBJECTIVES["saddle"]
    assert saddle.goal == "escape" and saddle.minimum_value is None
    assert saddle.f(0.0, 2.0) < saddle.f(0.0, 0.0) < saddle.f(2.0, 0.0)


def test_himmelblau_distance_picks_the_nearest_of_four_minima() -> None:
    distance, point = OBJECTIVES["himmelblau"].distance(-2.7, 3.0)
    assert point == (-2.805118, 3.131312) and distance < 0.2


def test_a_race_is_recognised_by_its_objective_and_validated() -> None:
    spec = parse_job(RACE_EXAMPLE)
    assert isinstance(spec, RaceSpec) and spec.objective.start_point == (-1.5, 2.0)
    default = parse_job({"objective": {"function": "beale"}, "optimizers": ["adam"]})
    assert isinstance(default, RaceSpec) and default.objective.start_point == (1.0, 1.5)
    with pytest.raises(ValueError, match="rosenbrock"):
        parse_job({"objective": {"function": "sphere"}, "optimizers": ["adam"]})
    with pytest.raises(ValueError, match="finite"):
        parse_job({"objective": {"function": "beale", "start": [1e9, 0]}, "optimizers": ["sgd"]})
    with pytest.raises(ValueError, match="steps"):
        parse_job({**RACE_EXAMPLE, "steps": 0})


def step(run_id: uuid.UUID, n: int, x: float, y: float, f: float) -> EpochRecord:
    return EpochRecord(
        run_id=run_id,
        epoch=n,
        loss=f,
        accuracy=None,
        val_loss=None,
        val_accuracy=None,
        learning_rate=0.01,
        epoch_seconds=0.001,
        examples_seen=0,
        time=datetime.now(UTC),
        steps=n,
        x=x,
        y=y,
    )


def facts(label: str, status: str = "succeeded", diverged: int | None = None) -> RunFacts:
    return RunFacts(
        id=uuid.uuid4(),
        index=0,
        label=label,
        optimizer={"name": label},
        batch_size=1,
        epochs=3,
        seed=0,
        status=status,
        diverged_epoch=diverged,
    )


def test_race_ranks_by_arrival_then_by_distance_and_keeps_the_diverged() -> None:
    rosen = OBJECTIVES["rosenbrock"]
    fast, slow, stuck, lost = facts("fast"), facts("slow"), facts("stuck"), facts("lost")
    lost = RunFacts(**{**lost.__dict__, "status": "diverged", "diverged_epoch": 2})

    def path(run: RunFacts, points: list[tuple[float, float]]) -> list[EpochRecord]:
        return [step(run.id, i, x, y, float(rosen.f(x, y))) for i, (x, y) in enumerate(points)]

    records = {
        fast.id: path(fast, [(-1.5, 2.0), (0.999, 0.999), (1.0, 1.0)]),
        slow.id: path(slow, [(-1.5, 2.0), (0.5, 0.3), (1.005, 1.0)]),
        stuck.id: path(stuck, [(-1.5, 2.0), (-1.0, 1.0), (-0.9, 0.8)]),
        lost.id: path(lost, [(-1.5, 2.0), (-40.0, 90.0)]),
    }
    result = compare_race(
        [lost, stuck, slow, fast], records, objective=rosen, start=(-1.5, 2.0), tolerance=0.01
    )
    assert [r.label for r in result.ranking] == ["fast", "slow", "stuck", "lost"]
    first = result.ranking[0]
    assert (first.arrived, first.steps_to_arrive, first.nearest) == (True, 1, (1.0, 1.0))
    assert result.ranking[1].steps_to_arrive == 2
    assert not result.ranking[2].arrived
    assert result.ranking[2].distance == pytest.approx(math.hypot(1.9, 0.2))
    assert result.ranking[3].diverged_step == 2 and result.ranking[3].status == "diverged"


def test_the_saddle_race_is_won_by_falling_off() -> None:
    saddle = OBJECTIVES["saddle"]
    quick, slow = facts("quick"), facts("slow")
    records = {
        quick.id: [step(quick.id, i, 1.0, y, 1.0 - y * y) for i, y in enumerate([0.0, 0.5, 1.5])],
        slow.id: [step(slow.id, i, 1.0, y, 1.0 - y * y) for i, y in enumerate([0.0, 0.1, 0.2])],
    }
    result = compare_race(
        [slow, quick], records, objective=saddle, start=(1.0, 0.0), tolerance=0.01
    )
    assert [r.label for r in result.ranking] == ["quick", "slow"]
    assert result.ranking[0].steps_to_arrive == 2 and "escaped" in result.arrival
