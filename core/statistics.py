"""Statistics over seeds: summaries with confidence intervals, paired tests, Holm's correction.

A seed is a block of a paired experiment: within it every arm starts from the same weights and
sees the same data in the same order, so arms are compared seed by seed.
"""

import math
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel

ALPHA = 0.05
CONFIDENCE = 0.95
TestName = Literal["t", "wilcoxon"]
TEST_NAMES: dict[str, str] = {"t": "paired t-test", "wilcoxon": "Wilcoxon signed-rank test"}


class Summary(BaseModel):
    """A value over seeds: mean, sample standard deviation and a 95% t interval of the mean."""

    n: int
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None
    values: list[float]


def summarize(values: Sequence[float], *, confidence: float = CONFIDENCE) -> Summary:
    """Mean, std (ddof=1) and the t confidence interval of the mean; spread needs 2 values."""
    data = [float(v) for v in values]
    n = len(data)
    if n == 0:
        return Summary(n=0, mean=None, std=None, ci_low=None, ci_high=None, values=[])
    mean = math.fsum(data) / n
    if n < 2:
        return Summary(n=1, mean=mean, std=None, ci_low=None, ci_high=None, values=data)
    from scipy import stats  # loaded on first use: the API starts without it

    std = float(np.std(data, ddof=1))
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
    return Summary(n=n, mean=mean, std=std, ci_low=mean - half, ci_high=mean + half, values=data)


def paired_test(
    a: Sequence[float], b: Sequence[float], *, test: TestName = "t"
) -> tuple[float | None, float | None]:
    """(statistic, two-sided p) of a paired test of a against b; None below two pairs.

    Identical samples give p = 1. The t-test follows scipy otherwise, including p = 0 when
    every pair differs by the same amount.
    """
    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    if len(a) < 2:
        return None, None
    from scipy import stats

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if np.all(x == y):
        return 0.0, 1.0
    result = stats.ttest_rel(x, y) if test == "t" else stats.wilcoxon(x, y)
    statistic, p = float(result.statistic), float(result.pvalue)
    return statistic, (p if math.isfinite(p) else None)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment: the family-wise error stays at alpha over all pairs."""
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def holm_where_defined(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's adjustment over the p-values that exist; None stays None (an untestable pair
    is not part of the family)."""
    tested = [i for i, p in enumerate(p_values) if p is not None]
    adjusted = dict(zip(tested, holm([p_values[i] or 0.0 for i in tested]), strict=True))
    return [adjusted.get(i) for i in range(len(p_values))]


def tie_groups(ordered: Sequence[str], differ: Callable[[str, str], bool]) -> list[int]:
    """Group numbers for keys ordered best first: a key joins its group's leader unless it
    differs significantly from it, and then leads a new group."""
    groups: list[int] = []
    leader: str | None = None
    for key in ordered:
        if leader is None or differ(leader, key):
            leader = key
            groups.append(len(set(groups)) + 1)
        else:
            groups.append(groups[-1])
    return groups


def _best_weights(n: int, ks: Sequence[int]) -> np.ndarray:
    """w[i, j]: the chance that the best of ks[j] draws (with replacement) from n sorted
    values is the (i+1)-th worst: ((i+1)/n)^k - (i/n)^k."""
    i = np.arange(1, n + 1, dtype=float)[:, None]
    k = np.asarray(ks, dtype=float)[None, :]
    return np.asarray((i / n) ** k - ((i - 1) / n) ** k)


def expected_best(
    values: Sequence[float], ks: Sequence[int], *, higher: bool = True
) -> list[float]:
    """The expected best of k configurations drawn with replacement from those tried, for
    each k: Dodge et al. 2019's expected validation performance. With the N values sorted
    worst first, E[best of k] = sum_i v_(i) ((i/N)^k - ((i-1)/N)^k)."""
    ordered = np.sort(np.asarray(values, dtype=float))
    if not higher:
        ordered = ordered[::-1]
    if len(ordered) == 0:
        return [math.nan for _ in ks]
    return [float(v) for v in ordered @ _best_weights(len(ordered), ks)]


def expected_best_band(
    values: Sequence[float],
    ks: Sequence[int],
    *,
    higher: bool = True,
    resamples: int = 1000,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> tuple[list[float], list[float]]:
    """A percentile bootstrap band of the expected best: the trials resampled with
    replacement `resamples` times (a fixed seed: the same data give the same band)."""
    data = np.asarray(values, dtype=float)
    if len(data) < 2:
        return [math.nan for _ in ks], [math.nan for _ in ks]
    rng = np.random.default_rng(seed)
    samples = np.sort(rng.choice(data, size=(resamples, len(data))), axis=1)
    if not higher:
        samples = samples[:, ::-1]
    curves = samples @ _best_weights(len(data), ks)
    tail = (1 - confidence) / 2 * 100
    low = np.percentile(curves, tail, axis=0)
    high = np.percentile(curves, 100 - tail, axis=0)
    return [float(v) for v in low], [float(v) for v in high]
