"""The training comparison: runs ranked one by one, and arms aggregated over seeds, ranked
and tested pairwise. Pure functions over the runs' records."""

import math
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from core.errors import Invalid, NotFound
from core.kinds.base import Column, Comparand, Table
from core.kinds.train.arms import (
    Cut,
    Records,
    RunFacts,
    arms_of,
    budget_summary,
    mean_curve,
    notes,
    pair_tests,
    significance_note,
    target_pairs,
    target_summary,
    tested,
)
from core.kinds.train.reading import TargetResult, read_run, test_at
from core.kinds.train.results import (
    ArmResult,
    AtBudget,
    ComparisonParams,
    RankBy,
    RankedRun,
    TargetTime,
    TrainComparison,
)
from core.kinds.train.spec import LOWER_IS_BETTER, TASK_METRICS, TEST_OF, TrainSpec
from core.runs import RunInfo
from core.statistics import ALPHA, CONFIDENCE, TEST_NAMES, Summary, TestName, summarize, tie_groups
from core.survival import TimeEstimate


def _signed(value: float | None, *, higher: bool) -> float:
    if value is None:
        return math.inf
    return -value if higher else value


def facts_of(spec: TrainSpec, runs: Sequence[RunInfo]) -> list[RunFacts]:
    labels = spec.arm_labels()
    return [
        RunFacts(
            id=r.id,
            index=r.index,
            label=r.label,
            arm_label=labels[r.arm] if r.arm < len(labels) else r.label,
            optimizer=r.optimizer,
            batch_size=r.batch_size or 0,
            epochs=r.budget,
            seed=r.seed or 0,
            status=r.status.value,
            error=r.error,
            diverged_epoch=r.diverged_at,
            queue_seconds=(
                (r.started_at - r.created_at).total_seconds()
                if r.started_at and r.created_at
                else None
            ),
            checkpoint_seconds=(r.summary or {}).get("checkpoint_seconds"),
        )
        for r in runs
    ]


def rank_runs(
    runs: Sequence[RunFacts],
    records: Records,
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
        read = read_run(own, metric, at_epochs or run.epochs, target=target)
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
                budgets=[_at_budget(own, metric, b) for b in budgets],
                target=read.target,
                test=test_at(own, TEST_OF[metric], at_epochs or run.epochs),
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


def _at_budget(records: Sequence[Any], metric: str, budget: int) -> AtBudget:
    read = read_run(records, metric, budget)
    return AtBudget(
        epochs=budget,
        best=read.best[1] if read.best else None,
        best_epoch=read.best[0] if read.best else None,
        final=read.final,
        reached=read.final is not None,
        test=test_at(records, TEST_OF[metric], budget),
    )


def compare_runs(
    runs: Sequence[RunFacts],
    records: Records,
    *,
    metric: str,
    budgets: Sequence[int],
    cuts: Sequence[Cut] = (Cut(),),
    ranked_by: RankBy = "best",
    test: TestName = "t",
    target: float | None = None,
    target_time: TargetTime = "epochs",
) -> TrainComparison:
    """Runs ranked one by one, and arms aggregated over seeds, ranked and tested pairwise.

    An arm is an optimizer at one batch size read at one epoch budget; `cuts` choose them.
    Arms rank by the mean over seeds of their best (or final) value; a paired test over the
    seeds both arms have, Holm-corrected across all pairs, decides which arms are tied.
    """
    higher = metric not in LOWER_IS_BETTER
    test_metric = TEST_OF[metric]
    arms = arms_of(runs, cuts)
    results: list[ArmResult] = []
    ranked_values: dict[str, dict[int, float]] = {}
    test_values: dict[str, dict[int, float]] = {}
    target_results: dict[str, list[TargetResult]] = {}
    for arm in arms:
        test_values[arm.key] = tested(arm, records, test_metric, arm.budget)
        reads = {
            r.id: read_run(records.get(r.id, []), metric, arm.budget, target=target)
            for r in arm.runs
        }
        target_results[arm.key] = [t for r in arm.runs if (t := reads[r.id].target)]
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
                    budget_summary(arm, records, metric, b)
                    for b in budgets
                    if b <= arm.budget and b != arm.budget
                ],
                curve=mean_curve(arm, records, metric),
                target=target_summary(arm, reads, target) if target is not None else None,
                test=summarize(list(test_values[arm.key].values())),
                diverged=notes(arm, {"diverged"}),
                failed=notes(arm, {"failed", "cancelled"}),
            )
        )

    pairs = pair_tests([a.key for a in arms], ranked_values, test)
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
    significance = significance_note(
        len(arms), max((p.n for p in pairs), default=0), len(pairs), test
    )
    return TrainComparison(
        metric=metric,
        higher_is_better=higher,
        ranked_by=ranked_by,
        test=TEST_NAMES[test],
        alpha=ALPHA,
        confidence=CONFIDENCE,
        target=target,
        target_time=target_time,
        target_pairs=target_pairs(target_results, target_time) if target is not None else [],
        seeds=sorted({r.seed for r in runs}),
        significance=significance,
        ranking=ranking,
        pairs=pairs,
        test_metric=test_metric,
        test_pairs=pair_tests([a.key for a in arms], test_values, test),
        selection=selection_note(metric, ranked_by, test_metric, ranking),
        runs=rank_runs(
            [r for r in runs if r.id in compared],
            records,
            metric=metric,
            budgets=budgets,
            at_epochs=next(iter(explicit)) if len(explicit) == 1 else None,
            target=target,
        ),
        table=_table(
            ranking,
            metric=metric,
            ranked_by=ranked_by,
            target=target,
            target_time=target_time,
            test_metric=test_metric,
            note=significance,
        ),
    )


def selection_note(
    metric: str, ranked_by: str, test_metric: str, ranking: Sequence[ArmResult]
) -> str:
    """Which data chose what, and which judged it, in words."""
    read = "each run's best epoch within" if ranked_by == "best" else "the last epoch of"
    chose = f"{metric} ({read} the arm's budget, mean over seeds) ranked the arms"
    if not any(a.test.n for a in ranking):
        return (
            f"{chose}; no test figures: the dataset holds out no test set (test_split 0) or "
            "these arms are read at epochs where it was not evaluated (only the job's epoch "
            "budgets are tested)"
        )
    source = "validation data" if metric.startswith("val_") else "training data"
    return (
        f"{chose} on {source}; {test_metric} is each seed's model at the arm's budget on the "
        "held-out test set, which no choice used (not the best epoch's model: the test set "
        "is evaluated only at the job's epoch budgets), with paired tests in test_pairs"
    )


def _summary(s: Summary) -> str:
    if s.mean is None:
        return "-"
    if s.std is None or s.ci_low is None or s.ci_high is None:
        return f"{s.mean:.4f}"
    return f"{s.mean:.4f} ± {s.std:.4f} [{s.ci_low:.4f}, {s.ci_high:.4f}]"


def _table(
    ranking: Sequence[ArmResult],
    *,
    metric: str,
    ranked_by: str,
    target: float | None,
    target_time: TargetTime,
    test_metric: str,
    note: str,
) -> Table:
    higher = metric not in LOWER_IS_BETTER
    columns = [
        Column(key="rank", title="rank"),
        Column(key="group", title="group"),
        Column(key="arm", title="arm"),
        Column(key="seeds", title="seeds"),
        Column(key="value", title=f"{ranked_by} {metric} (mean ± std [95% CI])"),
        Column(key="test", title=f"{test_metric} at budget (held out)"),
        Column(key="seconds", title="seconds"),
    ]
    if target is not None:
        columns.append(
            Column(key="target", title=f"reached {target:g}: median {target_time} [95% CI]")
        )
    columns.append(Column(key="notes", title="notes"))
    rows = []
    for arm in ranking:
        found = [f"diverged seed {n.seed} epoch {n.epoch}" for n in arm.diverged]
        found += [f"{n.status} seed {n.seed}: {n.reason}" for n in arm.failed]
        row: dict[str, Any] = {
            "rank": arm.rank,
            "group": arm.group,
            "arm": arm.key,
            "seeds": len(arm.seeds),
            "value": _summary(arm.ranked_value),
            "test": _summary(arm.test),
            "seconds": None if arm.seconds.mean is None else round(arm.seconds.mean, 2),
            "notes": "; ".join(found),
        }
        if arm.target is not None:
            row["target"] = f"{arm.target.reached}/{arm.target.runs}" + _median(
                getattr(arm.target.estimate, target_time), target_time
            )
        rows.append(row)
    title = f"{metric} ({'higher' if higher else 'lower'} is better)"
    return Table(title=title, columns=columns, rows=rows, note=note)


def _median(estimate: TimeEstimate, unit: str) -> str:
    """The Kaplan-Meier median and its interval, in words."""
    if estimate.median is None:
        return ", median not reached"
    high = "∞" if estimate.ci_high is None else f"{estimate.ci_high:.4g}"
    low = "?" if estimate.ci_low is None else f"{estimate.ci_low:.4g}"
    return f", median {estimate.median:.4g} {unit} [{low}, {high}]"


# ---------------------------------------------------------------- what the client asked


def parse_cut(text: str) -> Cut:
    """'32x5': batch size 32 read at 5 epochs."""
    batch, _, epochs = text.lower().partition("x")
    return Cut(batch_size=int(batch), epochs=int(epochs))


def choose_cuts(runs: Sequence[RunFacts], params: ComparisonParams) -> list[Cut]:
    """The arms to compare: every batch size x budget asked, and the explicit cuts."""
    any_size: list[int | None] = [None]
    chosen = [
        Cut(batch_size=b, epochs=e)
        for b in (list(params.batch_size) or any_size)
        for e in (list(params.epochs) or any_size)
    ]
    if params.cut:
        explicit = [parse_cut(c) for c in params.cut]
        chosen = explicit if not (params.batch_size or params.epochs) else chosen + explicit
    sizes = sorted({r.batch_size for r in runs})
    longest = max((r.epochs for r in runs), default=0)
    for cut in chosen:
        if cut.batch_size is not None and cut.batch_size not in sizes:
            raise NotFound(
                f"no arm at batch size {cut.batch_size}: these runs' batch sizes are "
                f"{', '.join(map(str, sizes))}"
            )
        if cut.epochs is not None and not 1 <= cut.epochs <= longest:
            raise NotFound(f"no epoch {cut.epochs}: these runs train epochs 1..{longest}")
    return chosen


def select_arms(runs: Sequence[RunFacts], optimizers: Sequence[str]) -> list[RunFacts]:
    """Runs whose arm label or optimizer name is one of `optimizers` (all when empty)."""
    if not optimizers:
        return list(runs)
    known = {r.arm_label for r in runs} | {r.optimizer["name"] for r in runs}
    unknown = [o for o in optimizers if o not in known]
    if unknown:
        raise NotFound(
            f"no arm {', '.join(map(repr, unknown))}; arms: "
            f"{', '.join(sorted({r.arm_label for r in runs}))}"
        )
    return [r for r in runs if r.arm_label in optimizers or r.optimizer["name"] in optimizers]


def _target(spec: TrainSpec, params: ComparisonParams, metric: str) -> float | None:
    if params.target is not None:
        return params.target
    if spec.target is not None and spec.target.metric == metric:
        return spec.target.value
    return None


def metric_of(spec: TrainSpec, params: ComparisonParams) -> str:
    """The metric asked for, or the job's default; one the job records."""
    task = spec.task or "classification"
    metric = params.metric or spec.default_metric()
    recorded = [m for m in TASK_METRICS[task] if m != "learning_rate"]
    if metric not in recorded:
        raise NotFound(f"no {metric} in this job: a {task} records {', '.join(recorded)}")
    return metric


def compare(comparand: Comparand) -> TrainComparison:
    """The comparison of one job's runs, as the client's parameters cut it."""
    spec, params = comparand.spec, comparand.params
    assert isinstance(spec, TrainSpec) and isinstance(params, ComparisonParams)
    chosen = select_arms(facts_of(spec, comparand.runs), params.optimizer)
    metric = metric_of(spec, params)
    return compare_runs(
        chosen,
        comparand.records,
        metric=metric,
        budgets=spec.epochs,
        cuts=choose_cuts(chosen, params),
        ranked_by=params.by,
        test=params.test,
        target=_target(spec, params, metric),
        target_time=params.target_time,
    )


def compare_across(comparands: Sequence[Comparand]) -> TrainComparison:
    """Runs from several jobs trained on the same dataset and model, compared as one job's.

    Arms are matched by label and optimizer configuration; within an arm a seed may appear
    once (the same seed twice is the same run, not a second sample).
    """
    first = comparands[0]
    assert isinstance(first.spec, TrainSpec)
    for other in comparands[1:]:
        assert isinstance(other.spec, TrainSpec)
        for part in ("dataset", "model", "loss"):
            mine, theirs = getattr(first.spec, part), getattr(other.spec, part)
            if mine != theirs:
                raise Invalid(
                    f"runs of these jobs differ in {part} ({_short(mine)} vs {_short(theirs)}); "
                    "only runs on the same dataset and model compare fairly"
                )
    facts: list[RunFacts] = []
    job_of: dict[uuid.UUID, str] = {}
    records: dict[uuid.UUID, list[Any]] = {}
    for number, comparand in enumerate(comparands, start=1):
        assert isinstance(comparand.spec, TrainSpec)
        for fact in facts_of(comparand.spec, comparand.runs):
            facts.append(fact)
            job_of[fact.id] = str(comparand.job_id or number)[:8]
        records.update(comparand.records)
    facts = _distinct_arms(facts, job_of)
    params = first.params
    assert isinstance(params, ComparisonParams)
    budgets = sorted(
        {b for c in comparands if isinstance(c.spec, TrainSpec) for b in c.spec.epochs}
    )
    return compare_runs(
        facts,
        records,
        metric=metric_of(first.spec, params),
        budgets=budgets,
        cuts=choose_cuts(facts, params),
        ranked_by=params.by,
        test=params.test,
        target=params.target,
        target_time=params.target_time,
    )


def _short(value: Any) -> str:
    text = str(value.model_dump() if hasattr(value, "model_dump") else value)
    return text if len(text) <= 80 else text[:77] + "..."


def _distinct_arms(facts: list[RunFacts], job_of: dict[uuid.UUID, str]) -> list[RunFacts]:
    """One label per optimizer configuration; a seed once per arm and batch size."""
    configs: dict[str, list[dict[str, Any]]] = {}
    for f in facts:
        seen = configs.setdefault(f.arm_label, [])
        if f.optimizer not in seen:
            seen.append(f.optimizer)
    renamed = [
        replace(f, arm_label=f"{f.arm_label} (job {job_of[f.id]})")
        if len(configs[f.arm_label]) > 1
        else f
        for f in facts
    ]
    slots: dict[tuple[str, int, int], uuid.UUID] = {}
    for f in renamed:
        slot = (f.arm_label, f.batch_size, f.seed)
        if slot in slots:
            raise Invalid(
                f"runs {slots[slot]} and {f.id} are the same arm ({f.arm_label}), batch size "
                f"{f.batch_size} and seed {f.seed}: the same experiment twice; pick one"
            )
        slots[slot] = f.id
    return renamed
