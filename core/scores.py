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

from core.kinds.base import Table
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


# ---------------------------------------------------------------- the answer


class WorkloadArm(BaseModel):
    label: str
    seeds: list[int | None]
    seed_times: list[float | None] = Field(
        description="Each seed's first time at the target; null: never (or diverged, failed)."
    )
    time: float | None = Field(description="The median over seeds; null: infinite.")
    ratio: float | None = Field(description="time / the fastest arm's time; null: infinite.")


class WorkloadScore(BaseModel):
    job_id: str
    name: str
    kind: str
    dataset: str
    metric: str
    higher_is_better: bool
    target: float
    target_source: str = Field(description="given, or auto: the baseline's median best value.")
    arms: list[WorkloadArm]


class ArmScore(BaseModel):
    label: str
    workloads: int = Field(description="How many workloads the arm was scored on.")
    score: float = Field(description="The profile's normalized area over [1, r_max], in [0, 1].")
    profile: list[ProfilePoint]
    speedup: float | None = Field(
        description="Geometric mean over workloads of baseline time / this arm's time, where "
        "both reached the target; null when there is none."
    )
    speedup_workloads: int


class ScoreAnswer(BaseModel):
    time: str = Field(description="What time counts: epochs, steps or training seconds.")
    r_max: float
    baseline: str | None
    method: str
    workloads: list[WorkloadScore]
    arms: list[ArmScore] = Field(description="Best score first.")
    warnings: list[str]
    table: Table


METHOD = (
    "Each job is a workload and each arm (by label) a contestant. Per workload, an arm's time is "
    "the median over its seeds of the first {time} at which a run reached the target (a run "
    "that never did, diverged or failed counts as infinity); the ratio is that time over the "
    "fastest arm's. The profile rho(tau) is the fraction of the arm's workloads with ratio at "
    "most tau; the score is its area over [1, {r_max:g}] divided by {width:g}: 1 means fastest "
    "everywhere, 0 never within {r_max:g}x of the fastest. As MLCommons AlgoPerf scores "
    "training algorithms."
)


def scored(
    workloads: Sequence[tuple[WorkloadScore, Workload]], *, r_max: float, baseline: str | None
) -> tuple[list[ArmScore], list[str]]:
    """Each arm's profile, score and speedup over the baseline, best score first; warnings."""
    by_arm: dict[str, list[float]] = {}
    pairs: dict[str, list[tuple[float, float]]] = {}
    for shown, workload in workloads:
        times = {a: workload.arm_time(a) for a in workload.seed_times}
        found = ratios(times)
        for arm in shown.arms:
            by_arm.setdefault(arm.label, []).append(found[arm.label])
            if baseline is not None and baseline in times:
                pairs.setdefault(arm.label, []).append((times[baseline], times[arm.label]))
    arms = []
    for label, arm_ratios in by_arm.items():
        speedup, n = geometric_mean_speedup(pairs.get(label, []))
        arms.append(
            ArmScore(
                label=label,
                workloads=len(arm_ratios),
                score=score(arm_ratios, r_max),
                profile=profile(arm_ratios, r_max),
                speedup=speedup,
                speedup_workloads=n,
            )
        )
    arms.sort(key=lambda a: (-a.score, a.label))
    warnings = []
    counts = {a.workloads for a in arms}
    if len(counts) > 1:
        fewer = [f"{a.label} ({a.workloads})" for a in arms if a.workloads < max(counts)]
        warnings.append(
            f"not every arm ran on every workload: {', '.join(fewer)} of {max(counts)}; each "
            "arm's profile is over the workloads it ran on"
        )
    if len(workloads) < 3:
        warnings.append(
            f"{len(workloads)} workload(s): a profile over so few says little; AlgoPerf scores "
            "over eight"
        )
    return arms, warnings


def draw(answer: ScoreAnswer, fmt: str) -> bytes:
    """The performance profiles: rho(tau) of every arm, a step function on [1, r_max]."""
    import io

    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5.5), dpi=110)
    axes = figure.add_subplot()
    for i, arm in enumerate(answer.arms):
        taus = [p.tau for p in arm.profile]
        rhos = [p.rho for p in arm.profile]
        axes.step(
            taus,
            rhos,
            where="post",
            color=f"C{i % 10}",
            linewidth=1.8,
            label=f"{arm.label}: score {arm.score:.3f} ({arm.workloads} workloads)",
        )
    axes.set_xlim(1, answer.r_max)
    axes.set_ylim(-0.02, 1.02)
    axes.set_xlabel(f"tau: time to target ({answer.time}) over the fastest arm's")
    axes.set_ylabel("fraction of workloads within tau")
    axes.grid(alpha=0.3)
    if answer.arms:
        axes.legend(fontsize=8)
    figure.suptitle(f"performance profiles over {len(answer.workloads)} workloads")
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, bbox_inches="tight")
    return buffer.getvalue()
