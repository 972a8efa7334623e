"""The race's test functions: known minima, and gradients that agree with the functions."""

import math

import numpy as np
import pytest

from core.kinds.race.objectives import OBJECTIVES


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
