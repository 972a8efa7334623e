"""Scores across jobs: each job a workload, each arm a contestant (core/scores.py)."""

import math
import re
import statistics
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from api.services.jobs import DRAWING, records_by_run, visible
from core import kinds
from core.errors import Conflict, Invalid
from core.keys import Principal
from core.kinds.base import ArmName, Column, Table
from core.kinds.train.reading import best_of, time_to_target, trained_values
from core.kinds.train.spec import LOWER_IS_BETTER, TASK_METRICS, Metric
from core.models import Job
from core.runs import RunInfo
from core.scores import (
    INFINITY,
    METHOD,
    ArmScore,
    ScoreAnswer,
    Workload,
    WorkloadArm,
    WorkloadScore,
    draw,
    ratios,
    scored,
)

UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
NUMBER = r"[-+]?([0-9]{1,20}(\.[0-9]{0,20})?|\.[0-9]{1,20})([eE][-+]?[0-9]{1,2})?"
TARGET_PATTERN = f"^{UUID}:{NUMBER}$"  # plain groups: the schema's regex dialect is ECMA's
TARGET = re.compile(f"^(?P<job>{UUID}):(?P<value>{NUMBER})$")
NEVER = {"diverged", "failed"}
ENDED = {"succeeded", "failed", "cancelled"}
FIELD = {"epochs": "epochs", "steps": "steps", "seconds": "seconds"}


class ScoreParams(BaseModel):
    job_id: list[uuid.UUID] = Field(
        min_length=1, max_length=100, description="The jobs to score: each is a workload."
    )
    metric: Metric | None = Field(
        default=None,
        description="The metric whose target counts (default: each job's headline metric, "
        "val_accuracy for a classification).",
    )
    baseline: ArmName | None = Field(
        default=None,
        description="The arm (label) speedups are measured against, and whose median best "
        "value is the target where it is auto.",
    )
    target: list[Annotated[str, Field(max_length=100, pattern=TARGET_PATTERN)]] = Field(
        default_factory=list,
        max_length=100,
        description="JOB:VALUE (repeatable): that workload's target; the job must be one of "
        "job_id. A job not named has target auto (the baseline's median best value over "
        "seeds).",
    )
    r_max: float = Field(
        default=4.0, gt=1, le=1000, allow_inf_nan=False, description="The profile's reach."
    )
    time: Literal["epochs", "steps", "seconds"] = Field(
        default="seconds",
        description="What time counts: training seconds (evaluation excluded, as AlgoPerf), "
        "optimizer steps, or epochs.",
    )


def _targets(params: ScoreParams) -> dict[uuid.UUID, float]:
    found: dict[uuid.UUID, float] = {}
    for text in params.target:
        match = TARGET.match(text)
        value = None
        if match:
            try:
                job, value = uuid.UUID(match["job"]), float(match["value"])
            except ValueError:
                match = None
        if not match or value is None or not math.isfinite(value):
            raise Invalid(f"target {text!r} is not JOB:VALUE (a job id, a colon, a number)")
        if job not in params.job_id:
            raise Invalid(f"target {text!r} names job {job}, which is not among job_id")
        found[job] = value
    return found


def _workload(
    session: Session, job: Job, params: ScoreParams, given: float | None
) -> tuple[WorkloadScore, Workload]:
    kind = kinds.get_kind(job.kind)
    if kind.scored_runs is None:
        raise Invalid(
            f"job {job.id} is a {job.kind} job: only jobs that train to epochs (train, tune) "
            "are scored"
        )
    if job.status.value not in ENDED:
        raise Conflict(f"job {job.id} is {job.status.value}; score it once it has ended")
    spec = kinds.parse_job(job.spec)
    task = getattr(spec, "task", None) or "classification"
    metric = params.metric or spec.default_metric()  # type: ignore[attr-defined]
    if metric not in TASK_METRICS[task]:
        raise Invalid(f"job {job.id} is a {task}: it records no {metric}")
    higher = metric not in LOWER_IS_BETTER
    runs = kind.scored_runs([RunInfo.model_validate(r) for r in job.runs])
    records = records_by_run(session, [job])
    labels: dict[str, list[RunInfo]] = {}
    for run in runs:
        labels.setdefault(run.label, []).append(run)
    if given is not None:
        target, source = given, "given"
    else:
        if params.baseline is None:
            raise Invalid(
                f"job {job.id} has target auto, which needs a baseline: pass baseline=LABEL "
                f"(its arms: {', '.join(labels)}) or target={job.id}:VALUE"
            )
        if params.baseline not in labels:
            raise Invalid(
                f"job {job.id} has no arm {params.baseline!r} for its auto target (its arms: "
                f"{', '.join(labels)}); pass target={job.id}:VALUE"
            )
        bests = [
            b[1]
            for r in labels[params.baseline]
            if (
                b := best_of(trained_values(records.get(r.id, []), metric, r.budget), higher=higher)
            )
        ]
        if not bests:
            raise Invalid(f"the baseline {params.baseline!r} of job {job.id} recorded no {metric}")
        target = statistics.median(bests)
        source = f"auto: the median over {len(bests)} seed(s) of {params.baseline}'s best {metric}"
    seed_times: dict[str, list[float]] = {}
    for label, members in labels.items():
        times = []
        for run in members:
            found = time_to_target(records.get(run.id, []), metric, target, higher=higher)
            reached = found.reached and run.status.value not in NEVER
            times.append(float(getattr(found, FIELD[params.time])) if reached else INFINITY)
        seed_times[label] = times
    workload = Workload(name=str(job.id), target=target, seed_times=seed_times)
    arm_times = {label: workload.arm_time(label) for label in seed_times}
    found_ratios = ratios(arm_times)
    dataset = getattr(spec, "dataset", None)
    shown = WorkloadScore(
        job_id=str(job.id),
        name=job.name,
        kind=job.kind,
        dataset=str(getattr(dataset, "name", None) or getattr(dataset, "id", "")),
        metric=metric,
        higher_is_better=higher,
        target=target,
        target_source=source,
        arms=[
            WorkloadArm(
                label=label,
                seeds=[r.seed for r in labels[label]],
                seed_times=[None if math.isinf(t) else t for t in seed_times[label]],
                time=None if math.isinf(arm_times[label]) else arm_times[label],
                ratio=None if math.isinf(found_ratios[label]) else found_ratios[label],
            )
            for label in seed_times
        ],
    )
    return shown, workload


def scores(session: Session, principal: Principal, params: ScoreParams) -> ScoreAnswer:
    """The jobs scored as workloads; another owner's job is as unknown as a missing one."""
    given = _targets(params)
    workloads = [
        _workload(session, visible(session, job_id, principal), params, given.get(job_id))
        for job_id in dict.fromkeys(params.job_id)
    ]
    arms, warnings = scored(workloads, r_max=params.r_max, baseline=params.baseline)
    for shown, _ in workloads:
        base = next((a for a in shown.arms if a.label == params.baseline), None)
        if shown.target_source != "given" and base is not None and base.time is None:
            warnings.append(
                f"on {shown.name} the baseline does not reach its own auto target in the median "
                "(with an even number of seeds the median best lies between two seeds); pass "
                f"target={shown.job_id}:VALUE"
            )
    if params.baseline is not None and all(params.baseline != a.label for a in arms):
        raise Invalid(f"no workload has an arm {params.baseline!r}")
    method = METHOD.format(time=params.time, r_max=params.r_max, width=params.r_max - 1)
    return ScoreAnswer(
        time=params.time,
        r_max=params.r_max,
        baseline=params.baseline,
        method=method,
        workloads=[shown for shown, _ in workloads],
        arms=arms,
        warnings=warnings,
        table=_table(arms, params, method),
    )


def _table(arms: list[ArmScore], params: ScoreParams, method: str) -> Table:
    """The scores for people: the CLI and the dashboard show this."""
    columns = [
        Column(key="arm", title="arm"),
        Column(key="score", title=f"score (r_max {params.r_max:g})"),
        Column(key="workloads", title="workloads"),
        Column(key="speedup", title=f"speedup over {params.baseline or 'a baseline'}"),
    ]
    rows = [
        {
            "arm": a.label,
            "score": round(a.score, 4),
            "workloads": a.workloads,
            "speedup": None if a.speedup is None else f"{a.speedup:.3g}x ({a.speedup_workloads})",
        }
        for a in arms
    ]
    return Table(title="scores across workloads", columns=columns, rows=rows, note=method)


def plot(
    session: Session, principal: Principal, params: ScoreParams, fmt: Literal["png", "svg"]
) -> bytes:
    answer = scores(session, principal, params)
    with DRAWING:
        return draw(answer, fmt)
