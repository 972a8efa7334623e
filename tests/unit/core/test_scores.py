"""Performance profiles and scores (core.scores) against an example worked by hand."""

import itertools
import math

import pytest

from core.scores import (
    INFINITY,
    Workload,
    first_time,
    geometric_mean_speedup,
    median,
    profile,
    ratios,
    score,
)

# Three workloads, three arms; times in epochs (inf: the median seed never reached it).
#            adam   sgd    rmsprop
# digits     4      8      5        ratios 1, 2, 1.25
# synthetic  10     6      inf      ratios 5/3, 1, inf
# fashion    3      15     3        ratios 1, 5 (beyond r_max 4), 1
WORKLOADS = [
    Workload("digits", 0.9, {"adam": [4, 3, 5], "sgd": [8, 9, 7], "rmsprop": [5, 5, INFINITY]}),
    Workload("synthetic", 0.1, {"adam": [10], "sgd": [6], "rmsprop": [INFINITY]}),
    Workload("fashion", 0.8, {"adam": [3, 3], "sgd": [15, 15], "rmsprop": [2, 4]}),
]


def arm_ratios(label: str) -> list[float]:
    out = []
    for w in WORKLOADS:
        r = ratios({a: w.arm_time(a) for a in w.seed_times})
        out.append(r[label])
    return out


def test_median_over_seeds_counts_never_as_infinity() -> None:
    assert median([5, 5, INFINITY]) == 5
    assert median([5, INFINITY]) == INFINITY
    assert median([2, 4]) == 3
    assert median([INFINITY, INFINITY, 1]) == INFINITY


def test_ratios_by_hand() -> None:
    assert arm_ratios("adam") == pytest.approx([1, 10 / 6, 1])
    assert arm_ratios("sgd") == pytest.approx([2, 1, 5])
    assert arm_ratios("rmsprop")[0] == pytest.approx(1.25)
    assert math.isinf(arm_ratios("rmsprop")[1])
    assert ratios({"a": INFINITY, "b": INFINITY}) == {"a": INFINITY, "b": INFINITY}


def test_scores_by_hand() -> None:
    """score = sum over workloads of max(0, r_max - r) / (n (r_max - 1)), r_max = 4:
    adam: (3 + 7/3 + 3) / 9 = 0.9259...; sgd: (2 + 3 + 0) / 9 = 5/9 (5 is beyond r_max);
    rmsprop: (2.75 + 0 + 3) / 9 = 0.6388... (inf earns nothing)."""
    assert score(arm_ratios("adam"), 4) == pytest.approx((3 + 7 / 3 + 3) / 9)
    assert score(arm_ratios("sgd"), 4) == pytest.approx(5 / 9)
    assert score(arm_ratios("rmsprop"), 4) == pytest.approx(5.75 / 9)
    assert score([1.0, 1.0], 4) == 1.0
    assert score([INFINITY], 4) == 0.0


def test_score_is_the_area_under_the_profile() -> None:
    for label in ("adam", "sgd", "rmsprop"):
        r = arm_ratios(label)
        points = profile(r, 4)
        area = sum(a.rho * (b.tau - a.tau) for a, b in itertools.pairwise(points)) / (4 - 1)
        assert area == pytest.approx(score(r, 4))
        # Numerically too, on a fine grid: rho(tau) = fraction with ratio <= tau.
        grid = [1 + 3 * i / 30000 for i in range(30000)]
        riemann = sum(sum(x <= t for x in r) / len(r) for t in grid) * (3 / 30000) / 3
        assert riemann == pytest.approx(score(r, 4), abs=1e-3)


def test_profile_points_by_hand() -> None:
    points = profile(arm_ratios("sgd"), 4)
    assert [p.tau for p in points] == [1, 2, 4]
    assert [p.rho for p in points] == pytest.approx([1 / 3, 2 / 3, 2 / 3])
    assert [p.tau for p in profile([1.0, 4.0], 4)] == [1, 4]


def test_first_time_reads_the_direction() -> None:
    curve = [(1, 0.5), (2, 0.85), (3, None), (4, 0.95)]
    assert first_time(curve, 0.9, higher=True) == 4
    assert first_time(curve, 0.85, higher=True) == 2
    assert first_time([(1, 2.0), (2, 0.4)], 0.5, higher=False) == 2
    assert first_time([(1, float("nan"))], 0.5, higher=False) == INFINITY


def test_geometric_mean_speedup_over_workloads_both_reached() -> None:
    # baseline adam vs sgd: 4/8, 10/6, 3/15 -> (1/2 * 5/3 * 1/5) ** (1/3)
    pairs = [(4, 8), (10, 6), (3, 15)]
    speedup, n = geometric_mean_speedup(pairs)
    assert n == 3 and speedup == pytest.approx((0.5 * 5 / 3 * 0.2) ** (1 / 3))
    assert geometric_mean_speedup([(4, INFINITY)]) == (None, 0)
