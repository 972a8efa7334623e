"""Time to an event with the runs that never got there: censored data.

A run that reached the target at time t is an observation of t. A run that ended, diverged or
was cut at its budget before reaching it says only that its time is longer than what it
trained: a right-censored observation, neither infinite nor missing. The Kaplan-Meier estimate
uses both; the log-rank test compares two arms' curves. scipy does the arithmetic (loaded on
first use: the API starts without it).
"""

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from core.statistics import CONFIDENCE


@dataclass(frozen=True)
class Observation:
    """One run: the time it reached the target, or the time it stopped without reaching it."""

    time: float
    reached: bool


class CurvePoint(BaseModel):
    time: float
    reached: float = Field(description="Estimated fraction of runs that reached the target.")
    low: float
    high: float


class TimeEstimate(BaseModel):
    """Kaplan-Meier estimate of the time to target over the runs of one arm."""

    runs: int
    reached: int
    censored: int
    median: float | None = Field(
        description="The first time by which an estimated half of the runs reached the target; "
        "null when the estimate never gets there (fewer than half reached)."
    )
    ci_low: float | None
    ci_high: float | None = Field(
        description="Null: the interval is open above (the data cannot bound it)."
    )
    curve: list[CurvePoint]


def _censored(observations: Sequence[Observation]) -> Any:
    from scipy import stats

    return stats.CensoredData(
        uncensored=[o.time for o in observations if o.reached],
        right=[o.time for o in observations if not o.reached],
    )


def _first_at_most_half(times: Sequence[float], survival: Sequence[float]) -> float | None:
    return next((t for t, s in zip(times, survival, strict=True) if s <= 0.5 + 1e-12), None)


def _filled(bound: Sequence[float], survival: Sequence[float]) -> list[float]:
    """The band where it is defined; where S is 0 or 1 it has no width: S itself."""
    return [s if math.isnan(v) else float(v) for v, s in zip(bound, survival, strict=True)]


def kaplan_meier(
    observations: Sequence[Observation], *, confidence: float = CONFIDENCE
) -> TimeEstimate:
    """The estimate, its median and the median's confidence interval (Brookmeyer-Crowley: the
    times where the pointwise log-log band of the survival function crosses one half)."""
    n = len(observations)
    reached = sum(o.reached for o in observations)
    if n == 0:
        return TimeEstimate(
            runs=0, reached=0, censored=0, median=None, ci_low=None, ci_high=None, curve=[]
        )
    from scipy import stats

    sf = stats.ecdf(_censored(observations)).sf
    times = [float(t) for t in sf.quantiles]
    survival = [float(s) for s in sf.probabilities]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # undefined where S is 0 or 1
        band = sf.confidence_interval(confidence, method="log-log")
    low = _filled(band.low.probabilities, survival)
    high = _filled(band.high.probabilities, survival)
    return TimeEstimate(
        runs=n,
        reached=reached,
        censored=n - reached,
        median=_first_at_most_half(times, survival),
        ci_low=_first_at_most_half(times, low),
        ci_high=_first_at_most_half(times, high),
        curve=[
            CurvePoint(time=t, reached=1 - s, low=1 - h, high=1 - lo)
            for t, s, lo, h in zip(times, survival, low, high, strict=True)
        ],
    )


def logrank(
    a: Sequence[Observation], b: Sequence[Observation]
) -> tuple[float | None, float | None]:
    """(statistic, two-sided p) of the log-rank test of two arms' times; None when it is
    undefined (an empty arm, or no run of either reached the target)."""
    if not a or not b or not any(o.reached for o in (*a, *b)):
        return None, None
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.logrank(_censored(a), _censored(b))
    statistic, p = float(result.statistic), float(result.pvalue)
    if not (math.isfinite(statistic) and math.isfinite(p)):
        return None, None
    return statistic, p
