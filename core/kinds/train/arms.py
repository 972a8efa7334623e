"""Arms over seeds: an arm is an optimizer at one batch size read at one epoch budget; its
runs are one per seed, and arms are tested against each other seed by seed."""

import itertools
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.kinds.train.reading import RunAtBudget, TargetResult, read_run, test_at
from core.kinds.train.records import TrainRecord
from core.kinds.train.results import (
    BudgetSummary,
    CurvePoint,
    PairResult,
    RunNote,
    TargetPair,
    TargetSummary,
    TargetTime,
    TimeToTarget,
)
from core.kinds.train.spec import TEST_OF
from core.statistics import (
    ALPHA,
    TEST_NAMES,
    Summary,
    TestName,
    holm_where_defined,
    paired_test,
    summarize,
)
from core.survival import Observation, kaplan_meier, logrank

Records = Mapping[uuid.UUID, list[TrainRecord]]


@dataclass(frozen=True)
class RunFacts:
    """What the comparison needs to know of a run besides its records."""

    id: uuid.UUID
    index: int
    label: str
    arm_label: str  # the optimizer's label, without the batch size
    optimizer: dict[str, Any]
    batch_size: int
    epochs: int
    seed: int
    status: str
    error: str | None = None
    diverged_epoch: int | None = None
    queue_seconds: float | None = None
    checkpoint_seconds: float | None = None


@dataclass(frozen=True)
class Cut:
    """Which runs an arm takes and where it reads them: None takes every batch size, and
    each run's own budget."""

    batch_size: int | None = None
    epochs: int | None = None


@dataclass
class Arm:
    key: str
    label: str
    optimizer: dict[str, Any]
    batch_size: int
    budget: int
    runs: list[RunFacts]


def arms_of(runs: Sequence[RunFacts], cuts: Sequence[Cut]) -> list[Arm]:
    arms: dict[tuple[str, int, int], Arm] = {}
    for cut in cuts:
        for run in runs:
            if cut.batch_size is not None and run.batch_size != cut.batch_size:
                continue
            budget = cut.epochs or run.epochs
            key = (run.arm_label, run.batch_size, budget)
            arm = arms.setdefault(
                key,
                Arm(
                    key=f"{run.arm_label} bs={run.batch_size} epochs={budget}",
                    label=run.arm_label,
                    optimizer=run.optimizer,
                    batch_size=run.batch_size,
                    budget=budget,
                    runs=[],
                ),
            )
            if all(r.seed != run.seed for r in arm.runs):
                arm.runs.append(run)
    for arm in arms.values():
        arm.runs.sort(key=lambda r: r.seed)
    return list(arms.values())


def notes(arm: Arm, statuses: set[str]) -> list[RunNote]:
    return [
        RunNote(run_id=r.id, seed=r.seed, status=r.status, epoch=r.diverged_epoch, reason=r.error)
        for r in arm.runs
        if r.status in statuses
    ]


TIME_FIELDS: dict[str, str] = {
    "epochs": "trained_epochs",
    "steps": "trained_steps",
    "seconds": "trained_seconds",
}


def observations(results: Sequence[TargetResult], time: str) -> list[Observation]:
    """Each run's time to target, or where it was censored (what it trained)."""
    return [Observation(float(getattr(t, TIME_FIELDS[time])), t.reached) for t in results]


def target_summary(arm: Arm, reads: dict[uuid.UUID, RunAtBudget], target: float) -> TargetSummary:
    hits = [(r, t) for r in arm.runs if (t := reads[r.id].target) is not None]
    reached = [(r, t) for r, t in hits if t.reached]
    results = [t for _, t in hits]

    def over(field: str) -> Summary:
        return summarize([getattr(t, field) for _, t in reached])

    return TargetSummary(
        value=target,
        runs=len(arm.runs),
        reached=len(reached),
        not_reached_seeds=sorted(r.seed for r, t in hits if not t.reached),
        estimate=TimeToTarget(
            **{time: kaplan_meier(observations(results, time)) for time in TIME_FIELDS}
        ),
        epochs=over("epochs"),
        steps=over("steps"),
        examples=over("examples"),
        seconds=over("seconds"),
        eval_seconds=summarize([t.eval_seconds for t in results]),
        checkpoint_seconds=summarize(
            [r.checkpoint_seconds for r in arm.runs if r.checkpoint_seconds is not None]
        ),
        queue_seconds=summarize([r.queue_seconds for r in arm.runs if r.queue_seconds is not None]),
    )


def target_pairs(
    results: Mapping[str, Sequence[TargetResult]], time: TargetTime
) -> list[TargetPair]:
    """A log-rank test of every pair of arms' times to target (by arm key), Holm-corrected."""
    by_arm = {key: observations(found, time) for key, found in results.items()}
    raw = [(a, b, *logrank(by_arm[a], by_arm[b])) for a, b in itertools.combinations(by_arm, 2)]
    adjusted = holm_where_defined([p for *_, p in raw])
    return [
        TargetPair(
            a=a,
            b=b,
            time=time,
            statistic=statistic,
            p_value=p,
            p_holm=held,
            significant=held is not None and held < ALPHA,
        )
        for (a, b, statistic, p), held in zip(raw, adjusted, strict=True)
    ]


def mean_curve(arm: Arm, records: Records, metric: str) -> list[CurvePoint]:
    by_epoch: dict[int, list[float]] = {}
    for run in arm.runs:
        for r in records.get(run.id, []):
            value = r.metric(metric)
            if r.epoch <= arm.budget and value is not None:
                by_epoch.setdefault(r.epoch, []).append(value)
    points = []
    for epoch in sorted(by_epoch):
        s = summarize(by_epoch[epoch])
        points.append(
            CurvePoint(epoch=epoch, n=s.n, mean=s.mean, ci_low=s.ci_low, ci_high=s.ci_high)
        )
    return points


def budget_summary(arm: Arm, records: Records, metric: str, budget: int) -> BudgetSummary:
    reads = [read_run(records.get(r.id, []), metric, budget) for r in arm.runs]
    return BudgetSummary(
        epochs=budget,
        best=summarize([r.best[1] for r in reads if r.best]),
        final=summarize([r.final for r in reads if r.final is not None]),
        test=summarize(list(tested(arm, records, TEST_OF[metric], budget).values())),
    )


def tested(arm: Arm, records: Records, test_metric: str, budget: int) -> dict[int, float]:
    """Each seed's held-out test value at `budget` (seeds without one are left out)."""
    found = {r.seed: test_at(records.get(r.id, []), test_metric, budget) for r in arm.runs}
    return {seed: value for seed, value in found.items() if value is not None}


def pair_tests(
    keys: Sequence[str], values: dict[str, dict[int, float]], test: TestName
) -> list[PairResult]:
    """A paired test over the seeds both arms have, for every pair, Holm-corrected."""
    raw: list[tuple[str, str, int, float | None, float | None, float | None]] = []
    for a, b in itertools.combinations(keys, 2):
        seeds = sorted(values[a].keys() & values[b].keys())
        xa = [values[a][s] for s in seeds]
        xb = [values[b][s] for s in seeds]
        statistic, p = paired_test(xa, xb, test=test)
        diff = math.fsum(x - y for x, y in zip(xa, xb, strict=True)) / len(seeds) if seeds else None
        raw.append((a, b, len(seeds), diff, statistic, p))
    adjusted = holm_where_defined([p for *_, p in raw])
    return [
        PairResult(
            a=a,
            b=b,
            n=n,
            mean_difference=diff,
            statistic=statistic,
            p_value=p,
            p_holm=held,
            significant=held is not None and held < ALPHA,
        )
        for (a, b, n, diff, statistic, p), held in zip(raw, adjusted, strict=True)
    ]


def significance_note(arms: int, seeds: int, pairs: int, test: TestName) -> str:
    if arms < 2:
        return "one arm: nothing to test"
    if seeds < 2:
        return (
            "one seed: no significance can be claimed; submit the job with several seeds "
            "(for example seeds [0, 1, 2, 3, 4]) to test the differences"
        )
    note = (
        f"{TEST_NAMES[test]} over up to {seeds} paired seeds per pair, Holm-corrected across "
        f"{pairs} pairs at alpha {ALPHA}; arms in one group do not differ significantly from "
        "the group's best"
    )
    if test == "wilcoxon" and seeds < 6:
        note += f"; with {seeds} seeds the Wilcoxon test cannot reach p < 0.05 (use 6 or more)"
    return note
