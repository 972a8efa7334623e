"""What a job kind is. A kind is a plug-in: its spec, how the spec expands into runs, what its
records hold, how its runs are compared and drawn; the worker side (what one run does) lives
in worker/kinds/<kind>. Nothing else in the service knows one kind from another."""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, Field, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from core.contract import ContractModel, text
from core.optimizers import OptimizerSpec, arm_labels
from core.records import Record
from core.runs import RunInfo, RunPlan
from core.settings import Settings

Problem = tuple[tuple[str | int, ...], str]  # where in the body, and why
ArmName = Annotated[str, Field(min_length=1, max_length=200)]  # a label or optimizer name


class JobSpec(ContractModel):
    """What every kind's job has: a name and the optimizers to compare."""

    kind: str
    name: text(min_length=1, max_length=200) | None = None  # type: ignore[valid-type]
    optimizers: list[OptimizerSpec] = Field(min_length=1, max_length=64)

    # A field whose presence names this kind when a body has no "kind" (a race's objective).
    inferred_from: ClassVar[str | None] = None

    def expand(self) -> list[RunPlan]:
        """The runs of this job, in the order workers should take them."""
        raise NotImplementedError

    def arm_labels(self) -> list[str]:
        return arm_labels(self.optimizers)

    def display_name(self) -> str:
        return self.name or " vs ".join(dict.fromkeys(o.canonical for o in self.optimizers))

    def problems(self, settings: Settings) -> list[Problem]:
        """Where the job exceeds this service's configured limits beyond the schema's: the
        runs per job, a product of several lists."""
        runs = len(self.expand())
        if runs > settings.max_runs_per_job:
            why = f"this job is {self.size(runs)}; the limit is {settings.max_runs_per_job}"
            return [(("optimizers",), why)]
        return []

    def size(self, runs: int) -> str:
        """How many runs the job is, and why."""
        return f"{runs} runs"

    def uploads(self) -> list[tuple[tuple[str | int, ...], str, Any]]:
        """The uploads the job names: where in the body, "dataset" or "model", and the id."""
        return []

    def check_uploads(self, meta: Mapping[Any, dict[str, Any]]) -> list[Problem]:
        """Given the facts of the uploads it names (by id), why the job cannot run on them."""
        return []

    def referenced_jobs(self) -> list[tuple[tuple[str | int, ...], Any]]:
        """Earlier jobs the job takes something from (a tuning job's learning-rate interval
        from a range test): where in the body, and the job's id. Resolved at submission,
        before anything else is checked."""
        return []

    def use_jobs(self, found: Mapping[Any, "Referenced"]) -> list[Problem]:
        """Given each job it names, take what it needs into the spec (the stored job then
        says it outright); why it cannot, if it cannot."""
        return []

    @classmethod
    def settings_bounds(cls, settings: Settings) -> dict[str, int]:
        """Schema maxima that come from settings, by field: they appear in /openapi.json."""
        return {}


@dataclass(frozen=True)
class Referenced:
    """A job another job's spec names: its kind, status and comparison (default parameters)."""

    kind: str
    status: str
    spec: "JobSpec"
    comparison: BaseModel


@dataclass(frozen=True)
class Comparand:
    """What a comparison works from: the job's spec, its runs and their records, and what the
    client asked for."""

    spec: JobSpec
    runs: Sequence[RunInfo]
    records: Mapping[Any, list[Any]]  # run id -> that run's records, in position order
    params: Any
    job_id: Any = None


@dataclass(frozen=True)
class Progress:
    """A job between its runs' steps, for a kind whose runs wait on each other (a tuning
    job's rungs and phases): its spec, its runs as they stand, and their records on demand."""

    spec: JobSpec
    runs: Sequence[RunInfo]
    records: Callable[[Sequence[Any]], Mapping[Any, list[Any]]]  # run ids -> their records


@dataclass
class Steps:
    """What a kind decides on progress: paused runs to go on, paused runs to end pruned (why,
    and their summary), and new runs to queue."""

    resume: list[Any] = field(default_factory=list)
    prune: dict[Any, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    create: list[RunPlan] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.resume or self.prune or self.create)


@dataclass(frozen=True)
class Drawing:
    spec: JobSpec
    title: str
    runs: Sequence[RunInfo]
    records: Mapping[Any, list[Any]]
    params: Any
    fmt: Literal["png", "svg"]


class Column(BaseModel):
    key: str
    title: str


class Table(BaseModel):
    """The comparison for people: what the dashboard and the CLI show, for any kind."""

    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    note: str


@dataclass(frozen=True)
class JobKind:
    """A kind of job, as the API, the stream and the clients see it."""

    name: str
    summary: str
    spec: type[JobSpec]
    record: type[Record]
    unit: str  # what a record's position and a run's budget count: "epoch", "step"
    metrics: tuple[str, ...]  # record fields worth charting, the headline first
    lower_is_better: frozenset[str]
    x_axes: tuple[str, ...]  # what a chart's x-axis may be
    comparison: type[BaseModel]
    comparison_params: type[BaseModel]
    compare: Callable[[Comparand], BaseModel]
    plot_params: type[BaseModel]
    plot: Callable[[Drawing], bytes]
    examples: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The plot is a picture of its own worth showing beside the charts (a race's contour).
    picture: bool = False
    # plot.png?view= values that are pictures of their own, shown beside the charts.
    views: tuple[str, ...] = ()
    # Runs of several jobs of this kind compared as one (POST /comparisons); None: refused.
    compare_across: Callable[[Sequence[Comparand]], BaseModel] | None = None
    # The metrics one job records, by its stored spec (a regression records no accuracy);
    # None: `metrics`.
    metrics_of: Callable[[Mapping[str, Any]], tuple[str, ...]] | None = None
    # Called under the job's row lock whenever one of its runs pauses or ends (and the job is
    # not being cancelled); None: runs are independent and the job only settles.
    advance: Callable[[Progress], Steps] | None = None
    # The runs a score across jobs reads (GET /scores), each a contestant's seed by its label:
    # their records must be epochs (core.kinds.train.records.TrainRecord). None: not scored.
    scored_runs: Callable[[Sequence[RunInfo]], list[RunInfo]] | None = None

    def job_metrics(self, spec: Mapping[str, Any]) -> tuple[str, ...]:
        return self.metrics if self.metrics_of is None else self.metrics_of(spec)


class OneOrMany:
    """A field that takes a value or a list of distinct values: the schema says both."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        array = handler(core_schema)
        return {"anyOf": [array["items"], {**array, "uniqueItems": True}]}


def one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, int | float) and not isinstance(value, bool) else value


def distinct(values: list[int]) -> list[int]:
    seen: set[int] = set()
    for v in values:
        if v in seen:
            raise ValueError(f"{v} is listed twice")
        seen.add(v)
    return values


def colors(labels: Sequence[str]) -> dict[str, str]:
    """One matplotlib colour per distinct label, in order of first appearance."""
    palette = [f"C{i}" for i in range(10)]
    distinct = list(dict.fromkeys(labels))
    return {label: palette[i % len(palette)] for i, label in enumerate(distinct)}
