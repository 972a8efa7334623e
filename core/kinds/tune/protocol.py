"""The tuning protocol's decisions, as pure functions of the runs and their records: which
trials go on at a rung (synchronous successive halving), and which configuration of each
optimizer is chosen for the final seeds. Called under the job's row lock whenever a run of
the job pauses or ends (core/progress.py), so each decision is taken exactly once, when the
whole group it concerns has arrived, and never depends on the order runs arrived in."""

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.kinds.base import Progress, Steps
from core.kinds.train.reading import read_run
from core.kinds.train.results import RankBy
from core.kinds.train.spec import LOWER_IS_BETTER
from core.kinds.tune.spec import TuneSpec
from core.models import FINISHED_RUN, RunStatus
from core.runs import RunInfo


def signed(value: float | None, *, higher: bool) -> float:
    """A sort key, best first; no value sorts last."""
    if value is None:
        return math.inf
    return -value if higher else value


@dataclass(frozen=True)
class Rung:
    """One optimizer's decision at one rung: the trials that go on, and the threshold."""

    arm: int
    epoch: int
    values: dict[int, float | None]  # trial -> mean over tuning seeds at the rung
    kept: list[int]
    threshold: float | None


def rung_value(records: Sequence[Any], metric: str, epoch: int) -> float | None:
    """The metric as recorded at that epoch (None when the run never recorded it)."""
    found = next((r.metric(metric) for r in records if r.epoch == epoch), None)
    return found if found is not None and math.isfinite(found) else None


def mean_or_none(values: Sequence[float | None]) -> float | None:
    if not values or any(v is None for v in values):
        return None
    return sum(v for v in values if v is not None) / len(values)


def keep_count(contenders: int, keep: float) -> int:
    """How many of `contenders` go on: the `keep` fraction, rounded up, at least one."""
    return max(1, math.ceil(keep * contenders - 1e-9))


def decide_rung(
    values: Mapping[int, float | None], *, keep: float, higher: bool
) -> tuple[list[int], float | None]:
    """The trials kept and the threshold: best first by value (no value last), ties by trial."""
    order = sorted(values, key=lambda t: (signed(values[t], higher=higher), t))
    kept = order[: keep_count(len(order), keep)]
    return sorted(kept), values[kept[-1]] if kept else None


def _by_trial(runs: Sequence[RunInfo]) -> dict[int, list[RunInfo]]:
    grouped: dict[int, list[RunInfo]] = defaultdict(list)
    for run in runs:
        grouped[run.trial or 0].append(run)
    return grouped


def in_race(runs: Sequence[RunInfo], previous: int | None) -> bool:
    """Whether a trial contends at a rung: not pruned, and, past the first rung, cleared at
    the previous one (a trial that died before it was counted there, not again)."""
    if all(r.status == RunStatus.PRUNED for r in runs):
        return False
    return previous is None or any((r.cleared_at or 0) >= previous for r in runs)


def pending_rungs(spec: TuneSpec, progress: Progress) -> list[tuple[int, int, list[RunInfo]]]:
    """(arm, rung epoch, that arm's contending runs) for each decision due now: some run of
    the arm waits at the rung, and every run of every trial still in the race has arrived
    there or ended."""
    due = []
    phase1 = [r for r in progress.runs if r.phase == 1]
    for arm in sorted({r.arm for r in phase1}):
        runs = [r for r in phase1 if r.arm == arm]
        waiting = sorted(
            {r.waiting_at for r in runs if r.status == RunStatus.PAUSED and r.waiting_at}
        )
        if not waiting:
            continue
        rung = waiting[0]
        earlier = [r for r in (spec.tuning.prune.rungs if spec.tuning.prune else []) if r < rung]
        contenders = [
            run
            for trial_runs in _by_trial(runs).values()
            if in_race(trial_runs, earlier[-1] if earlier else None)
            for run in trial_runs
        ]
        arrived = all(
            r.status in FINISHED_RUN or (r.status == RunStatus.PAUSED and r.waiting_at == rung)
            for r in contenders
        )
        if arrived:
            due.append((arm, rung, contenders))
    return due


def advance(progress: Progress) -> Steps:
    """Rung decisions due now, then phase 2 once phase 1 has ended."""
    spec = progress.spec
    assert isinstance(spec, TuneSpec)
    steps = Steps()
    metric = spec.metric
    higher = metric not in LOWER_IS_BETTER
    if spec.tuning.prune:
        for _, rung, contenders in pending_rungs(spec, progress):
            records = progress.records([r.id for r in contenders])
            trials = _by_trial(contenders)
            values = {
                t: mean_or_none([rung_value(records[r.id], metric, rung) for r in runs])
                for t, runs in trials.items()
            }
            kept, threshold = decide_rung(values, keep=spec.tuning.prune.keep, higher=higher)
            for trial, runs in trials.items():
                for run in runs:
                    if run.status != RunStatus.PAUSED:
                        continue
                    if trial in kept:
                        steps.resume.append(run.id)
                    else:
                        steps.prune[run.id] = pruned(
                            run,
                            records[run.id],
                            rung,
                            values[trial],
                            threshold,
                            metric,
                            kept=len(kept),
                            of=len(trials),
                            higher=higher,
                        )
    statuses = {r.id: r.status for r in progress.runs}
    statuses |= {run_id: RunStatus.QUEUED for run_id in steps.resume}
    statuses |= {run_id: RunStatus.PRUNED for run_id in steps.prune}
    phase1 = [r for r in progress.runs if r.phase == 1]
    if any(r.phase == 2 for r in progress.runs) or not all(
        statuses[r.id] in FINISHED_RUN for r in phase1
    ):
        return steps
    chosen = choose(spec, phase1, progress.records([r.id for r in phase1]))
    steps.create = spec.final_runs(
        {arm: (c.trial, c.config) for arm, c in chosen.items() if c is not None},
        start=max((r.index for r in progress.runs), default=-1) + 1,
    )
    return steps


def pruned(
    run: RunInfo,
    records: Sequence[Any],
    rung: int,
    value: float | None,
    threshold: float | None,
    metric: str,
    *,
    kept: int,
    of: int,
    higher: bool,
) -> tuple[str, dict[str, Any]]:
    """Why a run was pruned, and its summary (what it reached)."""
    side = "below" if higher else "above"
    shown = "no value" if value is None else f"{value:.4g}"
    reason = (
        f"pruned at epoch {rung}: {metric} {shown} (mean over its tuning seeds) {side} the "
        f"threshold {threshold:.4g}, the {kept} best of {of} configurations went on"
        if threshold is not None
        else f"pruned at epoch {rung}: {metric} {shown}; {kept} of {of} configurations went on"
    )
    trained = [r for r in records if r.epoch >= 1]
    at = next((r for r in trained if r.epoch == rung), None)
    summary: dict[str, Any] = {
        "epochs_completed": rung,
        "train_seconds": round(sum(r.epoch_seconds for r in trained), 4),
        "pruned_at": rung,
        "value": value,
        "threshold": threshold,
        "metric": metric,
        "kept": kept,
        "of": of,
    }
    if at is not None:
        summary["final"] = {
            k: v
            for k in ("loss", "accuracy", "val_loss", "val_accuracy", "mae", "val_mae")
            if (v := getattr(at, k, None)) is not None
        }
    return reason, summary


@dataclass(frozen=True)
class Trial:
    """One configuration of one optimizer's search, as phase 1 left it."""

    arm: int
    trial: int
    config: dict[str, Any]
    runs: list[RunInfo]
    value: float | None  # mean over tuning seeds of the best (or final) validation value
    complete: bool  # every tuning seed trained to the budget

    @property
    def status(self) -> str:
        statuses = {r.status.value for r in self.runs}
        for status in ("running", "paused", "queued", "failed", "diverged", "pruned", "cancelled"):
            if status in statuses:
                return status
        return "succeeded"


def trials_of(
    spec: TuneSpec, phase1: Sequence[RunInfo], records: Mapping[Any, Sequence[Any]], by: RankBy
) -> dict[int, list[Trial]]:
    """Each optimizer's trials, in trial order, with their values."""
    metric, budget = spec.metric, spec.max_epochs
    grouped: dict[tuple[int, int], list[RunInfo]] = defaultdict(list)
    for run in phase1:
        grouped[(run.arm, run.trial or 0)].append(run)
    found: dict[int, list[Trial]] = defaultdict(list)
    for (arm, trial), runs in sorted(grouped.items()):
        reads = [read_run(records.get(r.id, []), metric, budget) for r in runs]
        values = [
            read.ranked(by) if by == "final" else (read.best[1] if read.best else None)
            for read in reads
        ]
        if by == "final":  # a run that stopped early is read at its last value
            values = [
                v if v is not None else (read.last[1] if read.last else None)
                for v, read in zip(values, reads, strict=True)
            ]
        found[arm].append(
            Trial(
                arm=arm,
                trial=trial,
                config=runs[0].optimizer,
                runs=sorted(runs, key=lambda r: r.seed or 0),
                value=mean_or_none(values),
                complete=all(r.status == RunStatus.SUCCEEDED for r in runs),
            )
        )
    return found


def choose(
    spec: TuneSpec, phase1: Sequence[RunInfo], records: Mapping[Any, Sequence[Any]]
) -> dict[int, Trial | None]:
    """Each optimizer's chosen trial: among those trained to the budget on every tuning seed,
    the best by the selection metric (ties: the earlier trial); None when none was."""
    higher = spec.metric not in LOWER_IS_BETTER
    chosen: dict[int, Trial | None] = {}
    for arm, trials in trials_of(spec, phase1, records, spec.tuning.by).items():
        eligible = [t for t in trials if t.complete and t.value is not None]
        eligible.sort(key=lambda t: (signed(t.value, higher=higher), t.trial))
        chosen[arm] = eligible[0] if eligible else None
    return chosen
