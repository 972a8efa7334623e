"""Scores across workloads: performance profiles, as MLCommons AlgoPerf scores training
algorithms. Each job is a workload, each optimizer arm (by label) a contestant.

Per workload, an arm's time to target is the median over its seeds of the first time each run
reached the target; a run that never reached it, diverged or failed counts as infinity (so an
arm whose seeds mostly failed has an infinite median). Each arm's time is divided by the
fastest arm's on that workload; the profile rho(tau) is the fraction of the arm's workloads
where that ratio is at most tau, and the score is the profile's normalized area over
[1, r_max]: (1 / (r_max - 1)) * integral of rho from 1 to r_max. Ratios beyond r_max earn
nothing. The integral of a step function has a closed form: a workload with ratio r adds
max(0, r_max - r) to it, so the score is exact, not sampled on a grid.

Pure functions: the API's service gathers the times (api/services/scores.py).
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, Field

from core.kinds.train.reading import reaches

INFINITY = math.inf


@dataclass(frozen=True)
class Workload:
    """One job: its target, and each arm's per-seed first times (inf: never reached)."""

    name: str
    target: float
    seed_times: Mapping[str, Sequence[float]]  # arm label -> one time per seed

    def arm_time(self, label: str) -> float:
        return median(self.seed_times[label])


def median(times: Sequence[float]) -> float:
    """The median, infinities included: inf when the middle value(s) are inf."""
    ordered = sorted(times)
    n = len(ordered)
    if n == 0:
        return INFINITY
    if n % 2:
        return ordered[n // 2]
    low, high = ordered[n // 2 - 1], ordered[n // 2]
    return INFINITY if math.isinf(high) else (low + high) / 2


def first_time(
    points: Sequence[tuple[float, float | None]], target: float, *, higher: bool
) -> float:
    """The time of the first point whose value reached the target: (time, value) in order."""
    for time, value in points:
        if value is not None and math.isfinite(value) and reaches(value, target, higher=higher):
            return time
    return INFINITY


def ratios(times: Mapping[str, float]) -> dict[str, float]:
    """Each arm's time over the fastest arm's; all inf when no arm reached the target. Times
    are positive: they count training (epochs, steps, seconds) from its start."""
    fastest = min(times.values(), default=INFINITY)
    if math.isinf(fastest):
        return {label: INFINITY for label in times}
    return {label: t / fastest for label, t in times.items()}


class ProfilePoint(BaseModel):
    tau: float
    rho: float = Field(description="Fraction of the arm's workloads with ratio at most tau.")


def profile(arm_ratios: Sequence[float], r_max: float) -> list[ProfilePoint]:
    """The step function rho on [1, r_max]: its value at 1, then at every ratio where it rises."""
    n = len(arm_ratios)
    if n == 0:
        return []
    steps = sorted({r for r in arm_ratios if 1 < r <= r_max})
    return [
        ProfilePoint(tau=tau, rho=sum(r <= tau for r in arm_ratios) / n)
        for tau in dict.fromkeys((1.0, *steps, r_max))
    ]


def score(arm_ratios: Sequence[float], r_max: float) -> float:
    """The profile's normalized area over [1, r_max], exactly."""
    if not arm_ratios:
        return 0.0
    area = sum(max(0.0, r_max - max(r, 1.0)) for r in arm_ratios)
    return area / (len(arm_ratios) * (r_max - 1))


def geometric_mean_speedup(pairs: Sequence[tuple[float, float]]) -> tuple[float | None, int]:
    """The geometric mean of baseline time / arm time over workloads where both reached the
    target, and how many those were."""
    finite = [(b, a) for b, a in pairs if math.isfinite(b) and math.isfinite(a) and a > 0 < b]
    if not finite:
        return None, 0
    return math.exp(math.fsum(math.log(b / a) for b, a in finite) / len(finite)), len(finite)
