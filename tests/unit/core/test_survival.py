"""core.survival against scipy and against a Kaplan-Meier estimate worked by hand."""

import math

import pytest
from scipy import stats

from core.survival import Observation, kaplan_meier, logrank

# Six runs: reached at 3, 4, 4 and 6 epochs; two stopped without reaching it, at 5 and 10.
RUNS = [
    Observation(3, True),
    Observation(4, True),
    Observation(4, True),
    Observation(6, True),
    Observation(5, False),
    Observation(10, False),
]


def test_kaplan_meier_by_hand() -> None:
    """S(3) = 5/6; S(4) = 5/6 * 3/5 = 1/2; the run censored at 5 leaves two at risk at 6:
    S(6) = 1/2 * 1/2 = 1/4. The median is 4: the first time S is at most one half."""
    estimate = kaplan_meier(RUNS)
    assert (estimate.runs, estimate.reached, estimate.censored) == (6, 4, 2)
    reached = {p.time: p.reached for p in estimate.curve}
    assert reached[3] == pytest.approx(1 / 6)
    assert reached[4] == pytest.approx(1 / 2)
    assert reached[6] == pytest.approx(3 / 4)
    assert reached[10] == pytest.approx(3 / 4)
    assert estimate.median == 4


def test_censored_runs_are_not_dropped() -> None:
    """Dropping the censored runs would claim every run reached the target; ignoring that they
    were censored would put the median past the censoring times."""
    estimate = kaplan_meier(RUNS)
    assert estimate.curve[-1].reached < 1
    naive = kaplan_meier([o for o in RUNS if o.reached])
    assert naive.curve[-1].reached == 1


def test_median_interval_is_where_the_log_log_band_crosses_one_half() -> None:
    estimate = kaplan_meier(RUNS)
    sf = stats.ecdf(stats.CensoredData(uncensored=[3, 4, 4, 6], right=[5, 10])).sf
    band = sf.confidence_interval(0.95, method="log-log")
    times = list(sf.quantiles)
    low = next(t for t, s in zip(times, band.low.probabilities, strict=True) if s <= 0.5)
    assert estimate.ci_low == low == 3
    assert all(s > 0.5 for s in band.high.probabilities)
    assert estimate.ci_high is None  # open above: six runs cannot bound it
    for point, lo, hi in zip(
        estimate.curve, band.low.probabilities, band.high.probabilities, strict=True
    ):
        assert point.low == pytest.approx(1 - hi)
        assert point.high == pytest.approx(1 - lo)


def test_no_run_reached_has_no_median() -> None:
    estimate = kaplan_meier([Observation(5, False), Observation(5, False)])
    assert estimate.median is None and estimate.ci_low is None and estimate.reached == 0
    assert all(p.reached == 0 for p in estimate.curve)
    assert kaplan_meier([]).runs == 0


def test_every_run_reached_gives_a_finite_band() -> None:
    estimate = kaplan_meier([Observation(t, True) for t in (2, 3, 3, 4, 5, 5, 6, 8)])
    assert estimate.median == 4
    assert estimate.ci_low is not None and estimate.ci_high is not None
    assert estimate.ci_low <= 4 <= estimate.ci_high
    assert all(math.isfinite(p.low) and math.isfinite(p.high) for p in estimate.curve)


def test_logrank_matches_scipy() -> None:
    fast = [Observation(t, True) for t in (2, 3, 3, 4)] + [Observation(6, False)]
    slow = [Observation(t, True) for t in (5, 7)] + [Observation(8, False)] * 3
    statistic, p = logrank(fast, slow)
    expected = stats.logrank(
        stats.CensoredData(uncensored=[2, 3, 3, 4], right=[6]),
        stats.CensoredData(uncensored=[5, 7], right=[8, 8, 8]),
    )
    assert statistic == pytest.approx(expected.statistic)
    assert p == pytest.approx(expected.pvalue)
    assert p is not None and p < 0.05


def test_logrank_undefined_when_nobody_reached() -> None:
    never = [Observation(5, False)] * 3
    assert logrank(never, never) == (None, None)
    assert logrank([], RUNS) == (None, None)
