"""core.statistics, checked against scipy and against values worked by hand."""

import numpy as np
import pytest
from scipy import stats

from core.statistics import holm, paired_test, summarize, tie_groups

# ---------------------------------------------------------------- summaries


def test_summary_matches_scipy_mean_sample_std_and_t_interval() -> None:
    values = [0.91, 0.87, 0.95, 0.9, 0.93]
    s = summarize(values)
    low, high = stats.t.interval(
        0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values)
    )
    assert s.n == 5
    assert s.mean == pytest.approx(np.mean(values))
    assert s.std == pytest.approx(np.std(values, ddof=1))
    assert (s.ci_low, s.ci_high) == (pytest.approx(low), pytest.approx(high))


def test_summary_worked_by_hand() -> None:
    # mean 2.5; std sqrt(5/3) = 1.290994; sem 0.645497; t(0.975, 3) = 3.182446;
    # half width 3.182446 x 0.645497 = 2.054260.
    s = summarize([1, 2, 3, 4])
    assert s.std == pytest.approx(1.290994, abs=1e-6)
    assert (s.ci_low, s.ci_high) == (
        pytest.approx(0.445740, abs=1e-6),
        pytest.approx(4.554260, abs=1e-6),
    )


def test_one_value_has_a_mean_but_no_spread_and_none_has_nothing() -> None:
    one = summarize([0.8])
    assert (one.n, one.mean, one.std, one.ci_low, one.ci_high) == (1, 0.8, None, None, None)
    assert summarize([]).mean is None


# ---------------------------------------------------------------- paired tests


A = [0.912, 0.934, 0.921, 0.955, 0.930, 0.941, 0.918, 0.927]
B = [0.884, 0.921, 0.880, 0.902, 0.861, 0.925, 0.899, 0.903]


def test_paired_t_test_is_scipys() -> None:
    statistic, p = paired_test(A, B, test="t")
    expected = stats.ttest_rel(A, B)
    assert statistic == pytest.approx(expected.statistic)
    assert p == pytest.approx(expected.pvalue)
    assert p is not None and p < 0.01


def test_wilcoxon_is_scipys_and_exact_for_small_samples() -> None:
    statistic, p = paired_test(A, B, test="wilcoxon")
    expected = stats.wilcoxon(A, B)
    assert (statistic, p) == (pytest.approx(expected.statistic), pytest.approx(expected.pvalue))
    # Every difference positive in 8 pairs: the exact two-sided p is 2 / 2**8.
    assert p == pytest.approx(2 / 2**8)


def test_identical_samples_do_not_differ_and_one_pair_cannot_be_tested() -> None:
    assert paired_test([0.5, 0.6, 0.7], [0.5, 0.6, 0.7]) == (0.0, 1.0)
    assert paired_test([0.5], [0.4]) == (None, None)
    with pytest.raises(ValueError):
        paired_test([0.5, 0.6], [0.4])


def test_holm_worked_by_hand() -> None:
    # Sorted: 0.005 x 4 = 0.02; 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04,
    # raised to 0.06 to stay monotone.
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_holm_is_never_below_the_raw_p_nor_above_bonferroni() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        p = list(rng.uniform(0, 0.2, size=rng.integers(1, 10)))
        adjusted = holm(p)
        for raw, adj in zip(p, adjusted, strict=True):
            assert raw <= adj <= min(1.0, raw * len(p)) + 1e-12


def test_tie_groups_follow_the_leader() -> None:
    differ = {("a", "b"): False, ("a", "c"): True, ("c", "d"): False}
    groups = tie_groups(["a", "b", "c", "d"], lambda x, y: differ.get((x, y), True))
    assert groups == [1, 1, 2, 2]
    assert tie_groups(["a", "b", "c"], lambda x, y: True) == [1, 2, 3]
