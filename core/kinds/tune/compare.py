"""What a tuned comparison answers: the protocol, each optimizer's trials and chosen
configuration, the verdict of the final seeds on the held-out test set, the budget curves
(how much tuning each optimizer needs), the budget spent, and a reviewer's warnings."""

import math
import statistics
import uuid
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from core.errors import NotFound
from core.kinds.base import Column, Comparand, Table
from core.kinds.train.compare import compare_runs, facts_of
from core.kinds.train.results import RankBy, TrainComparison
from core.kinds.train.spec import LOWER_IS_BETTER, TASK_METRICS, TEST_OF, Metric
from core.kinds.tune.protocol import Trial, choose, signed, trials_of
from core.kinds.tune.search import Choice, describe
from core.kinds.tune.spec import TuneSpec
from core.models import FINISHED_RUN
from core.runs import RunInfo
from core.statistics import (
    CONFIDENCE,
    Summary,
    TestName,
    expected_best,
    expected_best_band,
    summarize,
    tie_groups,
)

EDGE = 0.05  # a chosen value within this fraction of its range's end is on the edge
FEW_FINAL_SEEDS = 5


class TuneComparisonParams(BaseModel):
    by: RankBy = Field(
        default="best",
        description="Read trials by their best value or their final (unless given: the "
        "job's tuning.by, which chose).",
    )
    test: TestName = Field(
        default="t", description="Paired test between arms over seeds: t or wilcoxon."
    )


class TunePlotParams(BaseModel):
    view: Literal["budget", "sensitivity", "curves"] = Field(
        default="budget",
        description="budget: expected best validation value against trials; sensitivity: "
        "each trial's value against each searched argument; curves: the final seeds' curves "
        "(tune jobs).",
    )
    metric: Metric = Field(default="val_loss", description="The metric to draw.")


class TrialRow(BaseModel):
    trial: int
    values: dict[str, Any] = Field(description="The searched arguments' values.")
    value: float | None = Field(
        description="The selection metric, mean over tuning seeds (best or final epoch)."
    )
    status: str
    pruned_at: int | None
    epochs: int = Field(description="Epochs trained, summed over tuning seeds.")
    run_ids: list[uuid.UUID]


class BudgetPoint(BaseModel):
    trials: int
    expected: float | None
    ci_low: float | None
    ci_high: float | None


class OptimizerTuning(BaseModel):
    arm: int
    label: str
    optimizer: str
    searched: dict[str, str] = Field(description="Each searched argument and its range.")
    fixed: dict[str, Any] = Field(description="The arguments not searched, as trained.")
    trials: list[TrialRow]
    chosen: TrialRow | None = Field(description="The configuration phase 2 trained.")
    chosen_configuration: dict[str, Any] | None
    tuning_value: float | None = Field(description="The chosen trial's value on the tuning seeds.")
    final_validation: Summary = Field(description="The selection metric on the final seeds.")
    final_test: Summary = Field(description="The test metric on the final seeds: the verdict.")
    budget_curve: list[BudgetPoint] = Field(
        description="Expected best validation value after k trials (Dodge et al. 2019), with "
        "a bootstrap 95% band; a pruned trial enters with the value it had when pruned (a "
        "lower bound on what it would have reached), trials without a value are left out."
    )


class VerdictRow(BaseModel):
    rank: int
    group: int | None
    label: str
    test: Summary
    validation: Summary
    tied_with: list[str]


class Protocol(BaseModel):
    sampler: str
    sampler_seed: int
    trials: dict[str, int]
    equal_budget: bool
    tuning_seeds: list[int]
    final_seeds: list[int]
    select_by: str
    by: RankBy
    prune: dict[str, Any] | None
    statement: str


class Spent(BaseModel):
    tuning_epochs: int
    final_epochs: int
    tuning_seconds: float
    final_seconds: float
    unpruned_tuning_epochs: int = Field(description="Phase 1 had no trial been pruned.")
    saved_epochs: int
    saved_seconds: float | None = Field(
        description="Estimated: saved epochs at the median seconds of a phase-1 epoch past "
        "the last rung."
    )


class TuneComparison(BaseModel):
    kind: Literal["tune"] = "tune"
    metric: str
    test_metric: str
    higher_is_better: bool
    phase: str = Field(description="searching, final seeds, or done.")
    protocol: Protocol
    optimizers: list[OptimizerTuning]
    verdict: list[VerdictRow] = Field(
        description="The optimizers ranked by the test metric of the final seeds; groups "
        "from paired tests over those seeds, Holm-corrected across pairs."
    )
    final: TrainComparison | None = Field(
        description="The final seeds compared as an ordinary job (validation ranking, "
        "paired tests on both metrics)."
    )
    spent: Spent
    warnings: list[str]
    selection: str
    table: Table


def _rows(trials: Sequence[Trial], drawn: Sequence[dict[str, Any]], budget: int) -> list[TrialRow]:
    rows = []
    for t in trials:
        pruned = [
            r.summary.get("pruned_at") for r in t.runs if r.summary and "pruned_at" in r.summary
        ]
        rows.append(
            TrialRow(
                trial=t.trial,
                values=drawn[t.trial] if t.trial < len(drawn) else {},
                value=t.value,
                status=t.status,
                pruned_at=pruned[0] if pruned else None,
                epochs=sum(_epochs(r) for r in t.runs),
                run_ids=[r.id for r in t.runs],
            )
        )
    return rows


def _epochs(run: RunInfo) -> int:
    return int((run.summary or {}).get("epochs_completed") or 0)


def _seconds(run: RunInfo) -> float:
    return float((run.summary or {}).get("train_seconds") or 0.0)


def budget_curve(values: Sequence[float], n: int, *, higher: bool) -> list[BudgetPoint]:
    ks = list(range(1, n + 1))
    if not values:
        return [BudgetPoint(trials=k, expected=None, ci_low=None, ci_high=None) for k in ks]
    expected = expected_best(values, ks, higher=higher)
    low, high = expected_best_band(values, ks, higher=higher)
    return [
        BudgetPoint(
            trials=k,
            expected=e,
            ci_low=None if math.isnan(lo) else lo,
            ci_high=None if math.isnan(hi) else hi,
        )
        for k, e, lo, hi in zip(ks, expected, low, high, strict=True)
    ]


def warnings_of(
    spec: TuneSpec, chosen: dict[int, Trial | None], labels: list[str], *, searched: bool = True
) -> list[str]:
    found: list[str] = []
    budgets = spec.budgets()
    if len(set(budgets)) > 1:
        found.append(
            "the search budgets differ ("
            + ", ".join(f"{label}: {n}" for label, n in zip(labels, budgets, strict=True))
            + " trials): the optimizer with more trials had more chances"
        )
    for i, a in enumerate(spec.optimizers):
        for j, b in enumerate(spec.optimizers):
            if i == j:
                continue
            own = set(b.config)
            for key in a.search:
                if "." not in key and key in own and key not in b.search:
                    found.append(
                        f"{labels[j]}'s {key} is fixed ({_short(b.config[key])}) while "
                        f"{labels[i]}'s search covers it: tune it too, or the comparison "
                        "favours the optimizer tuned more (Choi et al. 2019)"
                    )
    for arm, trial in chosen.items() if searched else ():
        optimizer = spec.optimizers[arm]
        if trial is None:
            found.append(f"{labels[arm]}: no trial trained to the budget on every tuning seed")
            continue
        values = spec.drawn()[arm][trial.trial]
        for key, dist in optimizer.search.items():
            if isinstance(dist, Choice) or key not in values:
                continue
            where = dist.position(values[key])
            if where <= EDGE or where >= 1 - EDGE:
                found.append(
                    f"{labels[arm]}'s chosen {key} {values[key]:g} lies at the edge of its range "
                    f"({describe(dist)}): the best value may lie outside; widen the range"
                )
    if len(spec.tuning.final_seeds) < FEW_FINAL_SEEDS:
        found.append(
            f"only {len(spec.tuning.final_seeds)} final seeds: the verdict's intervals are wide "
            f"and its tests weak; use {FEW_FINAL_SEEDS} or more"
        )
    return found


def _short(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _verdict(final: TrainComparison, higher: bool) -> list[VerdictRow]:
    arms = [a for a in final.ranking if a.test.mean is not None]
    arms.sort(key=lambda a: (signed(a.test.mean, higher=higher), a.key))
    differ = {frozenset((p.a, p.b)): p.significant for p in final.test_pairs}
    testable = max((p.n for p in final.test_pairs), default=0) >= 2
    keys = [a.key for a in arms]
    label = {a.key: a.label for a in arms}
    groups = tie_groups(keys, lambda x, y: differ[frozenset((x, y))]) if testable else []
    return [
        VerdictRow(
            rank=i + 1,
            group=groups[i] if groups else None,
            label=a.label,
            test=a.test,
            validation=a.ranked_value,
            tied_with=[
                label[b]
                for b in keys
                if b != a.key and testable and not differ[frozenset((a.key, b))]
            ],
        )
        for i, a in enumerate(arms)
    ]


def compare(comparand: Comparand) -> TuneComparison:
    spec, params = comparand.spec, comparand.params
    assert isinstance(spec, TuneSpec) and isinstance(params, TuneComparisonParams)
    metric = spec.metric
    if metric not in TASK_METRICS[spec.task or "classification"]:
        raise NotFound(f"no {metric} in this job")
    higher = metric not in LOWER_IS_BETTER
    by = params.by if "by" in params.model_fields_set else spec.tuning.by
    labels = spec.arm_labels()
    phase1 = [r for r in comparand.runs if r.phase == 1]
    phase2 = [r for r in comparand.runs if r.phase == 2]
    records = comparand.records
    trials = trials_of(spec, phase1, records, by)
    # The choice is made once the search has ended; before, no configuration is "chosen".
    searched = bool(phase1) and all(r.status in FINISHED_RUN for r in phase1)
    chosen = choose(spec, phase1, records) if searched else {}
    drawn = spec.drawn()
    budgets = spec.budgets()
    final = None
    if phase2:
        final = compare_runs(
            facts_of(spec, phase2),
            records,
            metric=metric,
            budgets=[spec.max_epochs],
            ranked_by=spec.tuning.by,
            test=params.test,
        )
    by_label = {a.label: a for a in final.ranking} if final else {}
    optimizers = []
    for arm, optimizer in enumerate(spec.optimizers):
        rows = _rows(trials.get(arm, []), drawn[arm], spec.max_epochs)
        pick = chosen.get(arm)
        result = by_label.get(labels[arm])
        optimizers.append(
            OptimizerTuning(
                arm=arm,
                label=labels[arm],
                optimizer=optimizer.canonical,
                searched={k: describe(v) for k, v in sorted(optimizer.search.items())},
                fixed={
                    k: v
                    for k, v in optimizer.config.items()
                    if k != "name" and k not in optimizer.search
                },
                trials=rows,
                chosen=next((r for r in rows if pick and r.trial == pick.trial), None),
                chosen_configuration=pick.config if pick else None,
                tuning_value=pick.value if pick else None,
                final_validation=result.ranked_value if result else summarize([]),
                final_test=result.test if result else summarize([]),
                budget_curve=budget_curve(
                    [r.value for r in rows if r.value is not None], budgets[arm], higher=higher
                ),
            )
        )
    unpruned = sum(budgets) * len(spec.tuning.tuning_seeds) * spec.max_epochs
    tuning_epochs = sum(_epochs(r) for r in phase1)
    tuning_seconds = sum(_seconds(r) for r in phase1)
    saved = max(0, unpruned - tuning_epochs) if all(r.summary for r in phase1) else 0
    spent = Spent(
        tuning_epochs=tuning_epochs,
        final_epochs=sum(_epochs(r) for r in phase2),
        tuning_seconds=round(tuning_seconds, 3),
        final_seconds=round(sum(_seconds(r) for r in phase2), 3),
        unpruned_tuning_epochs=unpruned,
        saved_epochs=saved,
        saved_seconds=_saved_seconds(spec, phase1, records, saved),
    )
    finished = all(
        r.summary is not None or r.status.value in ("failed", "cancelled") for r in comparand.runs
    )
    phase = "searching" if not phase2 else "done" if finished else "final seeds"
    protocol = Protocol(
        sampler=spec.tuning.sampler,
        sampler_seed=spec.tuning.sampler_seed,
        trials=dict(zip(labels, budgets, strict=True)),
        equal_budget=len(set(budgets)) == 1,
        tuning_seeds=spec.tuning.tuning_seeds,
        final_seeds=spec.tuning.final_seeds,
        select_by=metric,
        by=spec.tuning.by,
        prune=spec.tuning.prune.model_dump() if spec.tuning.prune else None,
        statement=statement(spec, labels, budgets),
    )
    verdict = _verdict(final, higher=TEST_OF[metric] not in LOWER_IS_BETTER) if final else []
    selection = (
        f"each optimizer's configuration was chosen by {metric} on validation data of the "
        f"tuning seeds {spec.tuning.tuning_seeds}; the verdict is {TEST_OF[metric]} on the "
        f"held-out test set of the final seeds {spec.tuning.final_seeds}, which no choice used"
    )
    return TuneComparison(
        metric=metric,
        test_metric=TEST_OF[metric],
        higher_is_better=higher,
        phase=phase,
        protocol=protocol,
        optimizers=optimizers,
        verdict=verdict,
        final=final,
        spent=spent,
        warnings=warnings_of(spec, chosen, labels, searched=searched),
        selection=selection,
        table=_table(optimizers, verdict, metric, TEST_OF[metric], protocol.statement, selection),
    )


def _saved_seconds(
    spec: TuneSpec, phase1: Sequence[RunInfo], records: Any, saved: int
) -> float | None:
    """Saved epochs at the median seconds of an epoch past the last rung (the epochs pruning
    skips; a resumed run's first epoch, which builds the model again, is slower)."""
    last = max(spec.tuning.prune.rungs) if spec.tuning.prune else 0
    seconds = [r.epoch_seconds for run in phase1 for r in records.get(run.id, []) if r.epoch > last]
    return round(saved * statistics.median(seconds), 1) if seconds else None


def statement(spec: TuneSpec, labels: list[str], budgets: list[int]) -> str:
    equal = (
        f"an equal search budget of {budgets[0]} trials per optimizer"
        if len(set(budgets)) == 1
        else "UNEQUAL search budgets ("
        + ", ".join(f"{label}: {n}" for label, n in zip(labels, budgets, strict=True))
        + ")"
    )
    prune = (
        f"; pruned at epochs {spec.tuning.prune.rungs} keeping {spec.tuning.prune.keep:g} of "
        "each optimizer's trials (synchronous successive halving)"
        if spec.tuning.prune
        else ""
    )
    return (
        f"{equal}, drawn by {spec.tuning.sampler} (seed {spec.tuning.sampler_seed}), each "
        f"trained {spec.max_epochs} epochs at batch size {spec.batch_size[0]} on tuning seeds "
        f"{spec.tuning.tuning_seeds}{prune}; chosen by {spec.tuning.by} {spec.metric} "
        f"(intervals at {CONFIDENCE:.0%})"
    )


def _summary(s: Summary) -> str:
    if s.mean is None:
        return "-"
    if s.ci_low is None or s.ci_high is None:
        return f"{s.mean:.4f}"
    return f"{s.mean:.4f} [{s.ci_low:.4f}, {s.ci_high:.4f}]"


def _table(
    optimizers: Sequence[OptimizerTuning],
    verdict: Sequence[VerdictRow],
    metric: str,
    test_metric: str,
    statement_text: str,
    selection: str,
) -> Table:
    ranks = {v.label: v for v in verdict}
    rows = []
    for o in optimizers:
        v = ranks.get(o.label)
        rows.append(
            {
                "rank": v.rank if v else None,
                "group": v.group if v else None,
                "arm": o.label,
                "trials": len(o.trials),
                "chosen": ", ".join(
                    f"{k}={_short(val)}" for k, val in (o.chosen.values if o.chosen else {}).items()
                )
                or ("-" if o.chosen is None else "(nothing searched)"),
                "tuning": None if o.tuning_value is None else round(o.tuning_value, 4),
                "validation": _summary(o.final_validation),
                "test": _summary(o.final_test),
            }
        )
    rows.sort(key=lambda r: (r["rank"] is None, r["rank"] or 0))
    columns = [
        Column(key="rank", title="rank"),
        Column(key="group", title="group"),
        Column(key="arm", title="optimizer"),
        Column(key="trials", title="trials"),
        Column(key="chosen", title="chosen configuration"),
        Column(key="tuning", title=f"{metric} (tuning seeds)"),
        Column(key="validation", title=f"{metric} final seeds [95% CI]"),
        Column(key="test", title=f"{test_metric} final seeds [95% CI] (verdict)"),
    ]
    return Table(
        title=f"tuned comparison by {metric}; verdict on {test_metric}",
        columns=columns,
        rows=rows,
        note=f"{statement_text}. {selection}.",
    )
