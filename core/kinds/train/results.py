"""What a training comparison answers, and what a client may ask of it."""

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from core.kinds.base import ArmName, Table
from core.kinds.train.reading import TargetResult
from core.kinds.train.spec import Metric
from core.statistics import Summary, TestName
from core.survival import TimeEstimate

RankBy = Literal["best", "final"]
TargetTime = Literal["epochs", "steps", "seconds"]
XAxis = Literal["epoch", "steps", "examples", "seconds"]


class ComparisonParams(BaseModel):
    metric: Metric | None = Field(
        default=None,
        description="The metric to rank by (losses and errors: lowest first). Default: "
        "val_accuracy for a classification, val_loss for a regression (without validation "
        "data, the training figure).",
    )
    epochs: list[Annotated[int, Field(ge=1, le=1_000_000)]] = Field(
        default_factory=list,
        max_length=64,
        description="Read every arm at these epoch budgets (repeat the parameter).",
    )
    batch_size: list[Annotated[int, Field(ge=1, le=1_000_000)]] = Field(
        default_factory=list, max_length=32, description="Only these batch sizes (repeatable)."
    )
    cut: list[Annotated[str, Field(pattern=r"^[0-9]{1,7}x[0-9]{1,7}$")]] = Field(
        default_factory=list,
        max_length=64,
        description="Arms as BATCHxEPOCHS, such as cut=32x5&cut=128x20: batch 32 read at 5 "
        "epochs against batch 128 at 20; added to the arms epochs and batch_size choose.",
    )
    optimizer: list[ArmName] = Field(
        default_factory=list,
        max_length=64,
        description="Only these arms, by label or optimizer name (repeatable).",
    )
    by: RankBy = Field(
        default="best", description="Rank by each run's best value within the budget, or final."
    )
    test: TestName = Field(
        default="t", description="Paired test between arms over seeds: t or wilcoxon."
    )
    target: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="Report epochs, steps, examples and seconds to reach this value.",
    )
    target_time: TargetTime = Field(
        default="epochs",
        description="The time the log-rank tests between arms compare (and the target plot's "
        "default axis): epochs, optimizer steps or training seconds.",
    )


class PlotParams(BaseModel):
    metric: Metric = Field(default="val_loss", description="The metric to draw.")
    x: XAxis = Field(default="epoch", description="The x-axis.")
    view: Literal["curves", "target"] = Field(
        default="curves",
        description="curves: the learning curves; target: the fraction of each arm's runs "
        "that reached the target against time (Kaplan-Meier), runs that never got there "
        "counted as censored.",
    )
    target: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="The target of view=target (default: the job's target).",
    )


class AtBudget(BaseModel):
    epochs: int
    best: float | None
    best_epoch: int | None
    final: float | None
    reached: bool
    test: float | None = Field(description="The test metric of the model at this budget.")


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
    test: float | None = Field(description="The test metric of the model at the run's budget.")


class BudgetSummary(BaseModel):
    epochs: int
    best: Summary
    final: Summary
    test: Summary


class CurvePoint(BaseModel):
    epoch: int
    n: int
    mean: float | None
    ci_low: float | None
    ci_high: float | None


class TimeToTarget(BaseModel):
    """Kaplan-Meier estimates over the arm's runs; a run that stopped (budget, divergence,
    failure) before the target is censored at what it trained."""

    epochs: TimeEstimate
    steps: TimeEstimate
    seconds: TimeEstimate = Field(description="Training seconds: evaluation excluded.")


class TargetSummary(BaseModel):
    value: float
    runs: int
    reached: int
    not_reached_seeds: list[int]
    estimate: TimeToTarget = Field(
        description="Time to target with the runs that never got there (censored): use this."
    )
    epochs: Summary = Field(description="Over the runs that reached the target only.")
    steps: Summary = Field(description="Over the runs that reached the target only.")
    examples: Summary = Field(description="Over the runs that reached the target only.")
    seconds: Summary = Field(description="Over the runs that reached the target only.")
    eval_seconds: Summary = Field(
        description="Per run, seconds spent evaluating until the target or the budget: not "
        "in the training seconds."
    )
    checkpoint_seconds: Summary = Field(
        description="Per run, seconds spent saving checkpoints (its last attempt)."
    )
    queue_seconds: Summary = Field(description="Per run, seconds from queued to started.")


class TargetPair(BaseModel):
    """Log-rank test of two arms' times to target, Holm-corrected across pairs."""

    a: str
    b: str
    time: TargetTime
    statistic: float | None
    p_value: float | None
    p_holm: float | None
    significant: bool


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
    test: Summary = Field(
        description="The test metric of each seed's model at the arm's budget, over seeds: "
        "data no choice was made on."
    )
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


class TrainComparison(BaseModel):
    kind: Literal["train"] = "train"
    metric: str
    higher_is_better: bool
    ranked_by: RankBy
    test: str
    alpha: float
    confidence: float
    target: float | None
    target_time: TargetTime = "epochs"
    target_pairs: list[TargetPair] = Field(
        default_factory=list,
        description="With a target: log-rank tests between arms' times to it, Holm-corrected.",
    )
    seeds: list[int]
    significance: str
    ranking: list[ArmResult]
    pairs: list[PairResult]
    test_metric: str = Field(description="The held-out metric reported beside `metric`.")
    test_pairs: list[PairResult] = Field(
        description="The same paired tests on the test metric, Holm-corrected."
    )
    selection: str = Field(description="Which data chose what, and which data judged it.")
    runs: list[RankedRun]
    table: Table
