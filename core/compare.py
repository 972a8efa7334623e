"""Comparison of runs: pure functions over their stored epoch records.

Two levels. `runs`: every run on its own. `ranking`: every arm (optimizer x batch size x
epoch budget) aggregated over its seeds, with paired tests between arms. A seed is a block
of a paired experiment: within it every arm starts from the same weights and sees the same
data in the same order, so arms are compared seed by seed.
"""

import itertools
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel
from scipy import stats

from core.objectives import Objective
from core.records import EpochRecord
from core.spec import LOWER_IS_BETTER

ALPHA = 0.05
CONFIDENCE = 0.95
TestName = Literal["t", "wilcoxon"]
RankBy = Literal["best", "final"]
TEST_NAMES: dict[str, str] = {"t": "paired t-test", "wilcoxon": "Wilcoxon signed-rank test"}


@dataclass(frozen=True)
class RunFacts:
    """What the comparison needs to know of a run besides its epochs."""

    id: uuid.UUID
    index: int
    label: str
    optimizer: dict[str, Any]
    batch_size: int
    epochs: int
    seed: int
    status: str
    error: str | None = None
    diverged_epoch: int | None = None
    arm: str = ""  # the optimizer's label without the batch size; label when empty

    @property
    def arm_label(self) -> str:
        return self.arm or self.label


# ---------------------------------------------------------------- statistics


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


# ---------------------------------------------------------------- one run


def _values(records: Sequence[EpochRecord], metric: str, max_epoch: int) -> list[tuple[int, float]]:
    """(epoch, value) of trained epochs up to max_epoch, finite values only."""
    out = []
    for r in records:
        value = r.metric(metric)
        if 1 <= r.epoch <= max_epoch and value is not None:
            out.append((r.epoch, value))
    return sorted(out)


def best_of(values: Sequence[tuple[int, float]], *, higher: bool) -> tuple[int, float] | None:
    """The best (epoch, value); the earliest epoch wins a tie."""
    if not values:
        return None
    pick = max if higher else min
    best_value = pick(v for _, v in values)
    return next((e, v) for e, v in values if v == best_value)


def reaches(value: float, target: float, *, higher: bool) -> bool:
    return value >= target if higher else value <= target


def steps_of(record: EpochRecord, batch_size: int) -> int:
    """Optimizer steps up to this record (recorded, or derived from examples and batch size)."""
    if record.steps is not None:
        return record.steps
    if record.epoch < 1:
        return 0
    per_epoch = record.examples_seen // record.epoch
    return record.epoch * math.ceil(per_epoch / batch_size)


class TargetResult(BaseModel):
    value: float
    reached: bool
    epochs: int | None
    steps: int | None = None
    seconds: float | None
    examples: int | None


def time_to_target(
    records: Sequence[EpochRecord],
    metric: str,
    target: float,
    *,
    higher: bool,
    batch_size: int = 1,
) -> TargetResult:
    """Epochs, steps, seconds of training and examples seen until the metric reached target."""
    seconds = 0.0
    for r in sorted(records, key=lambda r: r.epoch):
        if r.epoch < 1:
            continue
        seconds += r.epoch_seconds
        value = r.metric(metric)
        if value is not None and reaches(value, target, higher=higher):
            return TargetResult(
                value=target,
                reached=True,
                epochs=r.epoch,
                steps=steps_of(r, batch_size),
                seconds=seconds,
                examples=r.examples_seen,
            )
    return TargetResult(value=target, reached=False, epochs=None, seconds=None, examples=None)


def area_under_curve(values: Sequence[tuple[int, float]]) -> float | None:
    """The learning curve's area divided by its span: its average level (trapezoid rule).

    None unless the curve has every epoch from its first to its last.
    """
    if not values:
        return None
    epochs = [e for e, _ in values]
    if epochs != list(range(epochs[0], epochs[-1] + 1)):
        return None
    if len(values) == 1:
        return values[0][1]
    ys = [v for _, v in values]
    return float(np.trapezoid(ys, epochs)) / (epochs[-1] - epochs[0])


GAP_PAIRS = {
    "accuracy": ("accuracy", "val_accuracy"),
    "val_accuracy": ("accuracy", "val_accuracy"),
    "loss": ("loss", "val_loss"),
    "val_loss": ("loss", "val_loss"),
}


def generalization_gap(record: EpochRecord, metric: str) -> float | None:
    """Train minus validation of the metric's family (accuracy or loss) in this record."""
    train_name, val_name = GAP_PAIRS[metric]
    train, val = record.metric(train_name), record.metric(val_name)
    return None if train is None or val is None else train - val


@dataclass(frozen=True)
class RunAtBudget:
    """One run read at one epoch budget."""

    best: tuple[int, float] | None
    last: tuple[int, float] | None  # the latest trained (epoch, value), budget reached or not
    final: float | None  # the value at the budget itself
    auc: float | None
    gap: float | None
    target: TargetResult | None
    seconds: float

    def ranked(self, by: RankBy) -> float | None:
        if by == "final":
            return self.final
        return self.best[1] if self.best else None


def read_run(
    records: Sequence[EpochRecord],
    metric: str,
    budget: int,
    *,
    batch_size: int,
    target: float | None = None,
) -> RunAtBudget:
    higher = metric not in LOWER_IS_BETTER
    values = _values(records, metric, budget)
    best = best_of(values, higher=higher)
    by_epoch = {r.epoch: r for r in records}
    curve = sorted(
        (r.epoch, v) for r in records if r.epoch <= budget and (v := r.metric(metric)) is not None
    )
    trained = [r for r in records if 1 <= r.epoch <= budget]
    return RunAtBudget(
        best=best,
        last=values[-1] if values else None,
        final=values[-1][1] if values and values[-1][0] == budget else None,
        auc=area_under_curve(curve) if curve and curve[-1][0] == budget else None,
        gap=generalization_gap(by_epoch[best[0]], metric) if best else None,
        target=(
            time_to_target(trained, metric, target, higher=higher, batch_size=batch_size)
            if target is not None
            else None
        ),
        seconds=sum(r.epoch_seconds for r in trained),
    )


# ---------------------------------------------------------------- the per-run table


class AtBudget(BaseModel):
    epochs: int
    best: float | None
    best_epoch: int | None
    final: float | None
    reached: bool


class RankedRun(BaseModel):
    rank: int
    run_id: uuid.UUID
    label: str
    optimizer: dict[str, Any]
    batch_size: int
    epochs: int
    seed: int
    status: str
    error: str | None
    diverged_epoch: int | None
    best: float | None
    best_epoch: int | None
    final: float | None
    final_epoch: int | None
    seconds: float
    budgets: list[AtBudget]
    target: TargetResult | None


def _signed(value: float | None, *, higher: bool) -> float:
    if value is None:
        return math.inf
    return -value if higher else value


def rank_runs(
    runs: Sequence[RunFacts],
    records: dict[uuid.UUID, list[EpochRecord]],
    *,
    metric: str,
    budgets: Sequence[int],
    at_epochs: int | None = None,
    target: float | None = None,
) -> list[RankedRun]:
    """Every run ranked best first by its best value of `metric` within `at_epochs` epochs.

    Loss metrics rank lowest first. Runs without a value (failed before their first epoch)
    are ranked last and keep their status and error, so nothing silently disappears.
    """
    higher = metric not in LOWER_IS_BETTER
    rows: list[RankedRun] = []
    for run in runs:
        own = records.get(run.id, [])
        horizon = at_epochs or run.epochs
        read = read_run(own, metric, horizon, batch_size=run.batch_size, target=target)
        rows.append(
            RankedRun(
                rank=run.index,
                run_id=run.id,
                label=run.label,
                optimizer=run.optimizer,
                batch_size=run.batch_size,
                epochs=run.epochs,
                seed=run.seed,
                status=run.status,
                error=run.error,
                diverged_epoch=run.diverged_epoch,
                best=read.best[1] if read.best else None,
                best_epoch=read.best[0] if read.best else None,
                final=read.last[1] if read.last else None,
                final_epoch=read.last[0] if read.last else None,
                seconds=read.seconds,
                budgets=[_at_budget(own, metric, b, batch_size=run.batch_size) for b in budgets],
                target=read.target,
            )
        )
    rows.sort(
        key=lambda row: (
            row.best is None,
            _signed(row.best, higher=higher),
            _signed(row.final, higher=higher),
            row.rank,
        )
    )
    return [row.model_copy(update={"rank": i + 1}) for i, row in enumerate(rows)]


def _at_budget(
    records: Sequence[EpochRecord], metric: str, budget: int, *, batch_size: int
) -> AtBudget:
    read = read_run(records, metric, budget, batch_size=batch_size)
    return AtBudget(
        epochs=budget,
        best=read.best[1] if read.best else None,
        best_epoch=read.best[0] if read.best else None,
        final=read.final,
        reached=read.final is not None,
    )


# ---------------------------------------------------------------- arms over seeds


@dataclass(frozen=True)
class Cut:
    """Which runs an arm takes and where it reads them: None takes every batch size, and
    each run's own budget."""

    batch_size: int | None = None
    epochs: int | None = None


class BudgetSummary(BaseModel):
    epochs: int
    best: Summary
    final: Summary


class CurvePoint(BaseModel):
    epoch: int
    n: int
    mean: float | None
    ci_low: float | None
    ci_high: float | None


class TargetSummary(BaseModel):
    value: float
    runs: int
    reached: int
    not_reached_seeds: list[int]
    epochs: Summary
    steps: Summary
    examples: Summary
    seconds: Summary


class RunNote(BaseModel):
    run_id: uuid.UUID
    seed: int
    status: str
    epoch: int | None
    reason: str | None


class ArmResult(BaseModel):
    rank: int
    group: int | None
    tied_with: list[str]
    key: str
    label: str
    optimizer: dict[str, Any]
    batch_size: int
    epochs: int
    seeds: list[int]
    run_ids: list[uuid.UUID]
    ranked_value: Summary
    best: Summary
    best_epoch: Summary
    final: Summary
    stability: float | None
    auc: Summary
    generalization_gap: Summary
    seconds: Summary
    budgets: list[BudgetSummary]
    curve: list[CurvePoint]
    target: TargetSummary | None
    diverged: list[RunNote]
    failed: list[RunNote]


class PairResult(BaseModel):
    a: str
    b: str
    n: int
    mean_difference: float | None
    statistic: float | None
    p_value: float | None
    p_holm: float | None
    significant: bool


class Comparison(BaseModel):
    kind: Literal["train"] = "train"
    metric: str
    higher_is_better: bool
    ranked_by: RankBy
    test: str
    alpha: float
    confidence: float
    target: float | None
    seeds: list[int]
    significance: str
    ranking: list[ArmResult]
    pairs: list[PairResult]
    runs: list[RankedRun]


@dataclass
class _Arm:
    key: str
    label: str
    optimizer: dict[str, Any]
    batch_size: int
    budget: int
    runs: list[RunFacts]


def _arms(runs: Sequence[RunFacts], cuts: Sequence[Cut]) -> list[_Arm]:
    arms: dict[tuple[str, int, int], _Arm] = {}
    for cut in cuts:
        for run in runs:
            if cut.batch_size is not None and run.batch_size != cut.batch_size:
                continue
            budget = cut.epochs or run.epochs
            key = (run.arm_label, run.batch_size, budget)
            arm = arms.setdefault(
                key,
                _Arm(
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


def _notes(arm: _Arm, statuses: set[str]) -> list[RunNote]:
    return [
        RunNote(
            run_id=r.id,
            seed=r.seed,
            status=r.status,
            epoch=r.diverged_epoch,
            reason=r.error,
        )
        for r in arm.runs
        if r.status in statuses
    ]


def _target_summary(arm: _Arm, reads: dict[uuid.UUID, RunAtBudget], target: float) -> TargetSummary:
    hits = [(r, reads[r.id].target) for r in arm.runs]
    reached = [(r, t) for r, t in hits if t is not None and t.reached]

    def over(field: str) -> Summary:
        return summarize([getattr(t, field) for _, t in reached])

    return TargetSummary(
        value=target,
        runs=len(arm.runs),
        reached=len(reached),
        not_reached_seeds=sorted(r.seed for r, t in hits if t is None or not t.reached),
        epochs=over("epochs"),
        steps=over("steps"),
        examples=over("examples"),
        seconds=over("seconds"),
    )


def _curve(arm: _Arm, records: dict[uuid.UUID, list[EpochRecord]], metric: str) -> list[CurvePoint]:
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


def _significance_note(arms: int, seeds: int, pairs: int, test: TestName) -> str:
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


def compare_runs(
    runs: Sequence[RunFacts],
    records: dict[uuid.UUID, list[EpochRecord]],
    *,
    metric: str,
    budgets: Sequence[int],
    cuts: Sequence[Cut] = (Cut(),),
    ranked_by: RankBy = "best",
    test: TestName = "t",
    target: float | None = None,
) -> Comparison:
    """Runs ranked one by one, and arms aggregated over seeds, ranked and tested pairwise.

    An arm is an optimizer at one batch size read at one epoch budget; `cuts` choose them.
    Arms rank by the mean over seeds of their best (or final) value; a paired test over the
    seeds both arms have, Holm-corrected across all pairs, decides which arms are tied.
    """
    higher = metric not in LOWER_IS_BETTER
    arms = _arms(runs, cuts)
    results: list[ArmResult] = []
    ranked_values: dict[str, dict[int, float]] = {}
    for arm in arms:
        reads = {
            r.id: read_run(
                records.get(r.id, []), metric, arm.budget, batch_size=r.batch_size, target=target
            )
            for r in arm.runs
        }
        per_seed = {r.seed: reads[r.id].ranked(ranked_by) for r in arm.runs}
        ranked_values[arm.key] = {s: v for s, v in per_seed.items() if v is not None}
        final = summarize([v for r in arm.runs if (v := reads[r.id].final) is not None])
        results.append(
            ArmResult(
                rank=0,
                group=None,
                tied_with=[],
                key=arm.key,
                label=arm.label,
                optimizer=arm.optimizer,
                batch_size=arm.batch_size,
                epochs=arm.budget,
                seeds=[r.seed for r in arm.runs],
                run_ids=[r.id for r in arm.runs],
                ranked_value=summarize(list(ranked_values[arm.key].values())),
                best=summarize([b[1] for r in arm.runs if (b := reads[r.id].best)]),
                best_epoch=summarize([b[0] for r in arm.runs if (b := reads[r.id].best)]),
                final=final,
                stability=final.std,
                auc=summarize([v for r in arm.runs if (v := reads[r.id].auc) is not None]),
                generalization_gap=summarize(
                    [v for r in arm.runs if (v := reads[r.id].gap) is not None]
                ),
                seconds=summarize([reads[r.id].seconds for r in arm.runs]),
                budgets=[
                    _budget_summary(arm, records, metric, b)
                    for b in budgets
                    if b <= arm.budget and b != arm.budget
                ],
                curve=_curve(arm, records, metric),
                target=_target_summary(arm, reads, target) if target is not None else None,
                diverged=_notes(arm, {"diverged"}),
                failed=_notes(arm, {"failed", "cancelled"}),
            )
        )

    pairs = _pair_tests([a.key for a in arms], ranked_values, test)
    differ = {frozenset((p.a, p.b)): p.significant for p in pairs}
    results.sort(
        key=lambda a: (a.ranked_value.mean is None, _signed(a.ranked_value.mean, higher=higher))
    )
    testable = max((p.n for p in pairs), default=0) >= 2
    scored = [a.key for a in results if a.ranked_value.mean is not None]
    groups = (
        dict(zip(scored, tie_groups(scored, lambda x, y: differ[frozenset((x, y))]), strict=True))
        if testable
        else {}
    )
    ranking = [
        a.model_copy(
            update={
                "rank": i + 1,
                "group": groups.get(a.key),
                "tied_with": [
                    b
                    for b in scored
                    if b != a.key and testable and not differ[frozenset((a.key, b))]
                ]
                if a.key in groups
                else [],
            }
        )
        for i, a in enumerate(results)
    ]
    explicit = {c.epochs for c in cuts}
    compared = {r.id for arm in arms for r in arm.runs}
    return Comparison(
        metric=metric,
        higher_is_better=higher,
        ranked_by=ranked_by,
        test=TEST_NAMES[test],
        alpha=ALPHA,
        confidence=CONFIDENCE,
        target=target,
        seeds=sorted({r.seed for r in runs}),
        significance=_significance_note(
            len(arms), max((p.n for p in pairs), default=0), len(pairs), test
        ),
        ranking=ranking,
        pairs=pairs,
        runs=rank_runs(
            [r for r in runs if r.id in compared],
            records,
            metric=metric,
            budgets=budgets,
            at_epochs=next(iter(explicit)) if len(explicit) == 1 else None,
            target=target,
        ),
    )


def _budget_summary(
    arm: _Arm, records: dict[uuid.UUID, list[EpochRecord]], metric: str, budget: int
) -> BudgetSummary:
    reads = [
        read_run(records.get(r.id, []), metric, budget, batch_size=r.batch_size) for r in arm.runs
    ]
    return BudgetSummary(
        epochs=budget,
        best=summarize([r.best[1] for r in reads if r.best]),
        final=summarize([r.final for r in reads if r.final is not None]),
    )


def _pair_tests(
    keys: Sequence[str], values: dict[str, dict[int, float]], test: TestName
) -> list[PairResult]:
    raw: list[tuple[str, str, int, float | None, float | None, float | None]] = []
    for a, b in itertools.combinations(keys, 2):
        seeds = sorted(values[a].keys() & values[b].keys())
        xa = [values[a][s] for s in seeds]
        xb = [values[b][s] for s in seeds]
        statistic, p = paired_test(xa, xb, test=test)
        diff = math.fsum(x - y for x, y in zip(xa, xb, strict=True)) / len(seeds) if seeds else None
        raw.append((a, b, len(seeds), diff, statistic, p))
    tested = [i for i, row in enumerate(raw) if row[5] is not None]
    adjusted = dict(zip(tested, holm([raw[i][5] or 0.0 for i in tested]), strict=True))
    return [
        PairResult(
            a=a,
            b=b,
            n=n,
            mean_difference=diff,
            statistic=statistic,
            p_value=p,
            p_holm=adjusted.get(i),
            significant=adjusted.get(i, 1.0) < ALPHA,
        )
        for i, (a, b, n, diff, statistic, p) in enumerate(raw)
    ]


# ---------------------------------------------------------------- the 2-D race


class RaceRow(BaseModel):
    rank: int
    run_id: uuid.UUID
    label: str
    optimizer: dict[str, Any]
    status: str
    error: str | None
    steps: int
    x: float | None
    y: float | None
    f: float | None
    best_f: float | None
    nearest: tuple[float, float] | None
    distance: float | None
    arrived: bool
    steps_to_arrive: int | None
    diverged_step: int | None


class RaceComparison(BaseModel):
    kind: Literal["race"] = "race"
    function: str
    formula: str
    goal: Literal["reach", "escape"]
    points: list[tuple[float, float]]
    start: tuple[float, float]
    tolerance: float
    arrival: str
    ranking: list[RaceRow]


def compare_race(
    runs: Sequence[RunFacts],
    records: dict[uuid.UUID, list[EpochRecord]],
    *,
    objective: Objective,
    start: tuple[float, float],
    tolerance: float,
) -> RaceComparison:
    """Runs ranked by when they arrived (within tolerance of a minimum, or off the saddle),
    then by how close they ended; those that never arrived are ranked, not dropped."""

    def arrived(r: EpochRecord) -> bool:
        if r.x is None or r.y is None or r.loss is None:
            return False
        if objective.goal == "escape":
            assert objective.escape_below is not None
            return r.loss < objective.escape_below
        return objective.distance(r.x, r.y)[0] <= tolerance

    rows = []
    for run in runs:
        path = sorted(
            (r for r in records.get(run.id, []) if r.x is not None and r.y is not None),
            key=lambda r: r.epoch,
        )
        last = path[-1] if path else None
        finite = [v for r in path if (v := r.metric("loss")) is not None]
        where = (
            objective.distance(last.x, last.y)
            if last and last.x is not None and last.y is not None
            else None
        )
        first_arrival = next((r.epoch for r in path if arrived(r)), None)
        rows.append(
            RaceRow(
                rank=run.index,
                run_id=run.id,
                label=run.label,
                optimizer=run.optimizer,
                status=run.status,
                error=run.error,
                steps=last.epoch if last else 0,
                x=last.x if last else None,
                y=last.y if last else None,
                f=last.metric("loss") if last else None,
                best_f=min(finite) if finite else None,
                nearest=where[1] if where else None,
                distance=where[0] if where else None,
                arrived=first_arrival is not None,
                steps_to_arrive=first_arrival,
                diverged_step=run.diverged_epoch,
            )
        )

    def key(row: RaceRow) -> tuple[float, float, float, int]:
        closeness = (
            (row.f if row.f is not None else math.inf)
            if objective.goal == "escape"
            else (row.distance if row.distance is not None else math.inf)
        )
        return (
            row.steps_to_arrive if row.steps_to_arrive is not None else math.inf,
            closeness,
            row.best_f if row.best_f is not None else math.inf,
            row.rank,
        )

    rows.sort(key=key)
    arrival = (
        f"escaped the saddle: f(x, y) below {objective.escape_below}"
        if objective.goal == "escape"
        else f"within {tolerance} of a minimum"
    )
    return RaceComparison(
        function=objective.name,
        formula=objective.formula,
        goal=objective.goal,
        points=list(objective.points),
        start=start,
        tolerance=tolerance,
        arrival=arrival,
        ranking=[row.model_copy(update={"rank": i + 1}) for i, row in enumerate(rows)],
    )
