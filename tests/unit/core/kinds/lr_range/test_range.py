"""The learning-rate range test's schedule, its stopping rule and its suggestions on loss
curves whose answers are known."""

import math

import numpy as np
import pytest
from pydantic import ValidationError

from core.kinds import parse_job
from core.kinds.lr_range.schedule import Smoother, learning_rates
from core.kinds.lr_range.spec import RANGE_EXAMPLE, LrRangeSpec
from core.kinds.lr_range.suggest import suggest


def test_the_schedule_rises_exponentially_from_min_to_max() -> None:
    rates = learning_rates(1e-7, 10, 200)
    assert len(rates) == 200
    assert rates[0] == pytest.approx(1e-7) and rates[-1] == pytest.approx(10)
    ratios = np.array(rates[1:]) / np.array(rates[:-1])
    assert np.allclose(ratios, (10 / 1e-7) ** (1 / 199))  # one factor per step: a line on log
    assert learning_rates(1e-3, 1e-1, 3) == pytest.approx([1e-3, 1e-2, 1e-1])


def test_smoothing_is_fastais_bias_corrected_moving_average() -> None:
    smoother = Smoother(0.98, None)
    first, _ = smoother.add(2.0)
    assert first == pytest.approx(2.0)  # bias correction: the first value is the loss itself
    second, _ = smoother.add(1.0)
    average = 0.98 * (0.02 * 2.0) + 0.02 * 1.0
    assert second == pytest.approx(average / (1 - 0.98**2))
    flat = Smoother(0.0, None)
    assert [flat.add(v)[0] for v in (3.0, 1.0, 2.0)] == [3.0, 1.0, 2.0]


def test_the_test_stops_when_the_smoothed_loss_passes_stop_factor_times_its_best() -> None:
    smoother = Smoother(0.0, 4.0)
    losses = [2.0, 1.0, 0.5, 1.9, 2.1]
    stops = [smoother.add(v)[1] for v in losses]
    # the best is 0.5 from the third step: 1.9 is within 4 x 0.5 = 2.0, 2.1 is past it
    assert stops == [False, False, False, False, True]
    never = Smoother(0.0, None)
    assert not any(never.add(v)[1] for v in (1.0, 100.0, 1e9))


def test_a_loss_that_is_not_finite_ends_the_test() -> None:
    smoother = Smoother(0.9, 4.0)
    smoother.add(1.0)
    assert smoother.add(float("nan")) == (None, True)
    assert Smoother(0.9, None).add(float("inf")) == (None, True)


def curve(points: int = 121) -> list[tuple[float, float]]:
    """A loss against log10(lr) = x in [-6, 0]: a plateau, a tanh descent steepest at x = -3,
    a minimum, then a blow-up: 2 - tanh(2 (x + 3)) + exp(4 (x + 0.5))."""
    xs = np.linspace(-6, 0, points)
    return [(10.0**x, float(2 - math.tanh(2 * (x + 3)) + math.exp(4 * (x + 0.5)))) for x in xs]


def test_suggestions_on_a_curve_with_a_known_answer() -> None:
    points = curve()
    found = suggest(points, stopped=False)
    # steepest descent of 2 - tanh(2 (x + 3)) is at x = -3 (the exponential adds ~1e-4 there)
    assert found.steepest is not None
    assert math.log10(found.steepest) == pytest.approx(-3, abs=0.06)  # one grid step is 0.05
    # the minimum: d/dx = -2 sech^2(2 (x + 3)) + 4 exp(4 (x + 0.5)) = 0, solved numerically
    xs = np.linspace(-6, 0, 600001)
    ys = 2 - np.tanh(2 * (xs + 3)) + np.exp(4 * (xs + 0.5))
    true_min = xs[int(np.argmin(ys))]
    assert found.minimum is not None
    assert math.log10(found.minimum) == pytest.approx(true_min, abs=0.05)
    assert found.minimum_div_10 == pytest.approx(found.minimum / 10)
    # usable: from a tenth of the fall (start 3.0 -> min ~1.0: below ~2.8) to the minimum
    assert found.usable is not None
    low, high = found.usable
    start, lowest = points[0][1], min(v for _, v in points)
    first = next(lr for lr, v in points if start - v >= 0.1 * (start - lowest))
    assert low == first and high == found.minimum and low < found.steepest < high
    assert found.blew_up_at is None


def test_the_noisy_start_is_not_the_steepest_descent() -> None:
    """A moving average's first steps jump about: a drop there over a twentieth of a decade
    is a steep slope that says nothing. The first tenth of the steps is not read."""
    points = curve()
    noisy = [(lr, loss + (0.3 if i == 1 else 0.0)) for i, (lr, loss) in enumerate(points)]
    found = suggest(noisy, stopped=False)
    assert found.steepest is not None
    assert math.log10(found.steepest) == pytest.approx(-3, abs=0.06)


def test_where_it_blew_up_is_the_stopping_step_and_not_a_candidate() -> None:
    points = [*curve(), (2.0, 50.0)]
    found = suggest(points, stopped=True)
    assert found.blew_up_at == 2.0
    assert found.minimum == suggest(curve(), stopped=False).minimum
    assert suggest([(1e-3, None)], stopped=True).blew_up_at == 1e-3


def test_a_loss_that_never_falls_suggests_no_interval() -> None:
    rising = [(10.0**x, 1 + x / 10) for x in np.linspace(-6, 0, 20)]
    found = suggest(rising, stopped=False)
    assert found.usable is None and found.steepest is None
    # read without the first tenth (2 of 20 steps) and the last five, as fastai reads it
    assert found.minimum == pytest.approx(rising[2][0])


def test_the_spec_refuses_a_learning_rate_and_an_empty_range() -> None:
    spec = parse_job(RANGE_EXAMPLE)
    assert isinstance(spec, LrRangeSpec) and len(spec.expand()) == 3
    assert {r.budget for r in spec.expand()} == {200}
    implied = parse_job({"lr_range": {"steps": 50}, "optimizers": ["adam"]})
    assert isinstance(implied, LrRangeSpec)
    with pytest.raises(ValidationError, match="the range test sets the learning rate"):
        parse_job({"lr_range": {}, "optimizers": [{"name": "sgd", "lr": 0.1}]})
    with pytest.raises(ValidationError, match="must be above min"):
        parse_job({"lr_range": {"min": 1.0, "max": 0.1}, "optimizers": ["sgd"]})
    with pytest.raises(ValidationError):  # a range test has no epochs
        parse_job({"kind": "lr_range", "epochs": 5, "optimizers": ["sgd"]})
