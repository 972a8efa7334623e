"""Loading what a comparison needs from the database, and checking what a client asked for."""

import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.compare import (
    Comparison,
    Cut,
    RaceComparison,
    RankBy,
    RunFacts,
    TestName,
    compare_race,
    compare_runs,
)
from core.models import Job, Run
from core.objectives import OBJECTIVES
from core.records import EpochRecord
from core.repositories import EpochRepository
from core.spec import RaceSpec, parse_job


class ComparisonError(ValueError):
    """What the client asked for cannot be compared; the message says why."""


def run_facts(job: Job, runs: Sequence[Run]) -> list[RunFacts]:
    arms = parse_job(job.spec).arm_labels()
    return [
        RunFacts(
            id=r.id,
            index=r.index,
            label=r.label,
            optimizer=r.optimizer,
            batch_size=r.batch_size,
            epochs=r.epochs,
            seed=r.seed,
            status=r.status.value,
            error=r.error,
            diverged_epoch=r.diverged_epoch,
            arm=arms[r.arm] if r.arm < len(arms) else r.label,
        )
        for r in runs
    ]


def records_of(
    session: Session, job_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[EpochRecord]]:
    records: dict[uuid.UUID, list[EpochRecord]] = {}
    epochs = EpochRepository(session)
    for job_id in job_ids:
        for record in epochs.for_job(job_id):
            records.setdefault(record.run_id, []).append(record)
    return records


def parse_cut(text: str) -> Cut:
    """'32x5': batch size 32 read at 5 epochs."""
    batch, sep, epochs = text.lower().partition("x")
    if not sep or not batch.strip().isdigit() or not epochs.strip().isdigit():
        raise ComparisonError(f"cut {text!r} is not BATCHxEPOCHS, such as 32x5")
    return Cut(batch_size=int(batch), epochs=int(epochs))


def choose_cuts(
    runs: Sequence[RunFacts],
    *,
    cuts: Sequence[str],
    epochs: Sequence[int],
    batch_sizes: Sequence[int],
) -> list[Cut]:
    """The arms to compare: explicit BATCHxEPOCHS cuts, or every batch size x budget asked."""
    if cuts and (epochs or batch_sizes):
        raise ComparisonError("give cut, or epochs and batch_size, not both")
    any_size: list[int | None] = [None]
    chosen = (
        [parse_cut(c) for c in cuts]
        if cuts
        else [
            Cut(batch_size=b, epochs=e)
            for b in (list(batch_sizes) or any_size)
            for e in (list(epochs) or any_size)
        ]
    )
    sizes = sorted({r.batch_size for r in runs})
    longest = max((r.epochs for r in runs), default=0)
    for cut in chosen:
        if cut.batch_size is not None and cut.batch_size not in sizes:
            raise ComparisonError(
                f"batch size {cut.batch_size} is not among these runs' "
                f"({', '.join(map(str, sizes))})"
            )
        if cut.epochs is not None and not 1 <= cut.epochs <= longest:
            raise ComparisonError(f"epoch budget {cut.epochs} is outside these runs' 1..{longest}")
    return chosen


def select_arms(runs: Sequence[RunFacts], optimizers: Sequence[str]) -> list[RunFacts]:
    """Runs whose arm label or optimizer name is one of `optimizers` (all when empty)."""
    if not optimizers:
        return list(runs)
    known = {r.arm_label for r in runs} | {r.optimizer["name"] for r in runs}
    unknown = [o for o in optimizers if o not in known]
    if unknown:
        raise ComparisonError(
            f"no arm {', '.join(map(repr, unknown))}; arms: "
            f"{', '.join(sorted({r.arm_label for r in runs}))}"
        )
    return [r for r in runs if r.arm_label in optimizers or r.optimizer["name"] in optimizers]


def compare_job(
    session: Session,
    job: Job,
    *,
    metric: str,
    cuts: Sequence[str] = (),
    epochs: Sequence[int] = (),
    batch_sizes: Sequence[int] = (),
    optimizers: Sequence[str] = (),
    ranked_by: RankBy = "best",
    test: TestName = "t",
    target: float | None = None,
    tolerance: float | None = None,
) -> Comparison | RaceComparison:
    spec = parse_job(job.spec)
    facts = run_facts(job, job.runs)
    records = records_of(session, [job.id])
    if isinstance(spec, RaceSpec):
        return compare_race(
            select_arms(facts, optimizers),
            records,
            objective=OBJECTIVES[spec.objective.function],
            start=spec.objective.start_point,
            tolerance=tolerance or spec.tolerance,
        )
    if target is None and spec.target is not None and spec.target.metric == metric:
        target = spec.target.value
    chosen = select_arms(facts, optimizers)
    return compare_runs(
        chosen,
        records,
        metric=metric,
        budgets=spec.epochs,
        cuts=choose_cuts(chosen, cuts=cuts, epochs=epochs, batch_sizes=batch_sizes),
        ranked_by=ranked_by,
        test=test,
        target=target,
    )


def compare_across_jobs(
    session: Session,
    run_ids: Sequence[uuid.UUID],
    *,
    metric: str,
    cuts: Sequence[str] = (),
    epochs: Sequence[int] = (),
    batch_sizes: Sequence[int] = (),
    ranked_by: RankBy = "best",
    test: TestName = "t",
    target: float | None = None,
    owner: str | None = None,
) -> Comparison:
    """Runs from any jobs trained on the same dataset and model, compared as one job's.

    Arms are matched by label and optimizer configuration; within an arm a seed may appear
    once (the same seed twice is the same run, not a second sample).
    """
    wanted = list(dict.fromkeys(run_ids))
    query = select(Run).where(Run.id.in_(wanted))
    if owner is not None:  # Another owner's runs are as unknown as missing ones.
        query = query.join(Job, Job.id == Run.job_id).where(Job.owner == owner)
    runs = list(session.scalars(query))
    missing = set(wanted) - {r.id for r in runs}
    if missing:
        raise ComparisonError(f"no run {', '.join(sorted(map(str, missing)))}")
    jobs = {
        j.id: j for j in session.scalars(select(Job).where(Job.id.in_({r.job_id for r in runs})))
    }
    first = jobs[runs[0].job_id]
    for job in jobs.values():
        if parse_job(job.spec).kind == "race":
            raise ComparisonError(f"job {job.id} is a race; races are compared within their job")
        for part in ("dataset", "model"):
            if job.spec[part] != first.spec[part]:
                raise ComparisonError(
                    f"runs of job {first.id} and job {job.id} differ in {part} "
                    f"({_short(first.spec[part])} vs {_short(job.spec[part])}); "
                    "only runs on the same dataset and model compare fairly"
                )
    facts: list[RunFacts] = []
    for job in jobs.values():
        facts += run_facts(job, [r for r in runs if r.job_id == job.id])
    facts = _distinct_arms(facts, {r.id: r.job_id for r in runs})
    budgets = sorted({b for job in jobs.values() for b in job.spec["epochs"]})
    return compare_runs(
        facts,
        records_of(session, list(jobs)),
        metric=metric,
        budgets=budgets,
        cuts=choose_cuts(facts, cuts=cuts, epochs=epochs, batch_sizes=batch_sizes),
        ranked_by=ranked_by,
        test=test,
        target=target,
    )


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _distinct_arms(facts: list[RunFacts], job_of: dict[uuid.UUID, uuid.UUID]) -> list[RunFacts]:
    """One label per optimizer configuration; a seed once per arm and batch size."""
    configs: dict[str, list[dict[str, Any]]] = {}
    for f in facts:
        seen = configs.setdefault(f.arm_label, [])
        if f.optimizer not in seen:
            seen.append(f.optimizer)
    renamed = [
        replace(f, arm=f"{f.arm_label} (job {str(job_of[f.id])[:8]})")
        if len(configs[f.arm_label]) > 1
        else f
        for f in facts
    ]
    slots: dict[tuple[str, int, int], uuid.UUID] = {}
    for f in renamed:
        slot = (f.arm_label, f.batch_size, f.seed)
        if slot in slots:
            raise ComparisonError(
                f"runs {slots[slot]} and {f.id} are the same arm ({f.arm_label}), batch size "
                f"{f.batch_size} and seed {f.seed}: the same experiment twice; pick one"
            )
        slots[slot] = f.id
    return renamed
