"""The tuned comparison's contract: a training comparison whose optimizers each search a space
with the same number of trials, select on validation data with the tuning seeds, and are
judged on fresh seeds and the held-out test set. Validated without Keras."""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    ValidationError,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema, WithJsonSchema

from core.contract import ContractModel, integer
from core.kinds.base import Problem, Referenced, distinct
from core.kinds.train.results import RankBy
from core.kinds.train.spec import Metric, TrainSpec
from core.kinds.tune.search import (
    DIMENSION_KINDS,
    DISTRIBUTION_NAMES,
    Choice,
    Distribution,
    FromRangeTest,
    Sampler,
    SearchSpace,
    apply,
    draw,
    grid_levels,
)
from core.optimizers import OPTIMIZER_MODELS, SCHEDULE_PARAMS, Optimizer, Param, optimizer_params
from core.optimizers.spec import NameOrObject, named_optimizer
from core.runs import RunPlan
from core.settings import Settings

Seed = integer(ge=0, lt=2**31)
Trials = integer(ge=1, le=1024)


if TYPE_CHECKING:

    class TunedOptimizer(Optimizer):
        """An optimizer with some arguments searched: `search` maps each to a distribution."""

        search: dict[str, Distribution]
else:
    TunedOptimizer = Optimizer


def _flat_with_search(self: Any) -> dict[str, Any]:
    """The configuration written out, less what is searched, and the search."""
    found = {k: v for k, v in self.config.items() if k not in self.search}
    found |= {"label": self.label} if self.label else {}
    if self.search:
        found["search"] = {k: v.model_dump() for k, v in self.search.items()}
    return found


def _pair(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items, "minItems": 2, "maxItems": 2}


def _one(field: str, value: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {field: value},
        "required": [field],
        "additionalProperties": False,
        "description": description,
    }


def _bounded(param: Param, kind: str, *, positive: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": kind}
    names = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum", "lt": "exclusiveMaximum"}
    schema |= {names[k]: v for k, v in param.bounds().items()}
    if positive and schema.get("minimum", -1) <= 0 and schema.get("exclusiveMinimum", -1) <= 0:
        schema.pop("minimum", None)
        schema["exclusiveMinimum"] = 0
    return schema


def distribution_schema(param: Param) -> dict[str, Any] | None:
    """The distributions an argument may be searched by, its bounds in their items; None: it
    cannot be searched (a list of layer names). A range's low < high, and distinct choices,
    are beyond JSON Schema: answered 422 with the reason."""
    pair = "[low, high], low < high, within the argument's bounds"
    if param.kind == "bool":
        option = {"type": "boolean"}
        return _one(
            "choice",
            {"type": "array", "items": option, "minItems": 1, "maxItems": 2},
            "choice: distinct values",
        )
    if param.kind == "str_list":
        return None
    kind = "integer" if param.kind == "int" else "number"
    option = _bounded(param, kind)
    listed = {"anyOf": [option, {"type": "null"}]} if param.nullable else option
    choices = {"type": "array", "items": listed, "minItems": 1, "maxItems": 64}
    found = [_one("choice", choices, "choice: distinct values")]
    if param.kind == "int":
        found.append(_one("int_uniform", _pair(option), f"int_uniform {pair}"))
    else:
        found.append(_one("uniform", _pair(option), f"uniform {pair}"))
        if param.high is None or param.high > 0:
            found.append(
                _one(
                    "log_uniform",
                    _pair(_bounded(param, kind, positive=True)),
                    f"log_uniform {pair}",
                )
            )
    return {"oneOf": found}


def search_schema(name: str) -> dict[str, Any]:
    """`search` of one optimizer: its own arguments (and, as learning_rate.<argument>, those of
    the schedule its learning_rate is), each with the distributions its type allows."""
    properties: dict[str, Any] = {}
    for key, param in optimizer_params(name).items():
        schema = distribution_schema(param)
        if schema is not None:
            properties[key] = schema
    if "learning_rate" in properties:
        properties["learning_rate"]["oneOf"].append(
            _one(
                "from_range_test",
                {"type": "string", "format": "uuid"},
                "from_range_test: the id of a succeeded lr_range job; its usable interval for "
                "this optimizer (by label, else by name, at this batch size) is searched "
                "log-uniformly, and written into the stored job as log_uniform",
            )
        )
    for params in SCHEDULE_PARAMS.values():
        for key, param in params.items():
            schema = distribution_schema(param)
            if schema is not None:
                properties.setdefault(f"learning_rate.{key}", schema)
    return {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "maxProperties": 16,
        "description": "Arguments to search instead of fixing them, each with a distribution. "
        "A schedule's argument is learning_rate.<argument> (only of the schedule the "
        "optimizer's learning_rate is). A searched argument is not also given.",
    }


def _tuned_model(name: str) -> type["TunedOptimizer"]:
    """The optimizer's model with `search`: any of its arguments drawn instead of fixed."""
    base = OPTIMIZER_MODELS[name]
    model: type[TunedOptimizer] = type(
        f"Tuned{base.__name__}",
        (base,),
        {
            "__module__": __name__,
            "__qualname__": f"Tuned{base.__name__}",
            "__doc__": f"{base.__doc__} Any argument may be searched instead of fixed.",
            "__annotations__": {
                "search": Annotated[SearchSpace, WithJsonSchema(search_schema(name))]
            },
            "search": Field(default_factory=dict),
            "_flat": model_serializer(_flat_with_search),
        },
    )
    model.canonical = name
    return model


TUNED_MODELS: dict[str, type[TunedOptimizer]] = {n: _tuned_model(n) for n in OPTIMIZER_MODELS}

if TYPE_CHECKING:
    TunedOptimizerSpec = TunedOptimizer
else:
    TunedOptimizerSpec = Annotated[
        Union[tuple(TUNED_MODELS.values())],  # noqa: UP007
        Discriminator("name"),
        BeforeValidator(named_optimizer),
        NameOrObject(),
    ]


class PruneSpec(ContractModel):
    """Synchronous successive halving within each optimizer's trials: at each rung epoch,
    once every trial of that optimizer has reached it or ended, only the best `keep` fraction
    (by the selection metric, mean over tuning seeds; at least one) goes on."""

    rungs: Annotated[
        list[integer(ge=1)],  # type: ignore[valid-type]
        AfterValidator(distinct),
        Field(min_length=1, max_length=16, description="Epochs at which trials are compared."),
    ]
    keep: StrictFloat = Field(gt=0, lt=1, description="The fraction kept at each rung.")


class TuningSpec(ContractModel):
    """The protocol: trials per optimizer (equal budgets), the sampler, the selection rule
    and the two sets of seeds, one to choose and one to judge."""

    trials: Annotated[
        Trials | Annotated[list[Trials], Field(min_length=1, max_length=16)],  # type: ignore[valid-type]
        Field(
            description="Configurations drawn per optimizer: one number for all (an equal "
            "search budget), or one per optimizer (as many as optimizers) with "
            "allow_unequal_budgets."
        ),
    ] = 16
    allow_unequal_budgets: StrictBool = Field(
        default=False,
        description="Run optimizers with different numbers of trials (an optimizer searching "
        "nothing has one); refused otherwise, as unequal budgets bias the comparison.",
    )
    sampler: Sampler = Field(
        default="sobol",
        description="sobol (scrambled quasi-random), random, or grid (trials must fill it).",
    )
    sampler_seed: Seed = Field(  # type: ignore[valid-type]
        default=0, description="Scrambles sobol and seeds random: the draws are recorded."
    )
    select_by: Metric | None = Field(
        default=None,
        description="The validation metric a configuration is chosen by (default: the job's "
        "headline, val_accuracy or val_loss); written out.",
    )
    by: RankBy = Field(
        default="best", description="Each run's best value within the budget, or its final."
    )
    tuning_seeds: Annotated[
        list[Seed],  # type: ignore[valid-type]
        AfterValidator(distinct),
        Field(
            default_factory=lambda: [0],
            min_length=1,
            max_length=16,
            description="Seeds every trial trains on.",
            json_schema_extra={"uniqueItems": True},
        ),
    ]
    final_seeds: Annotated[
        list[Seed],  # type: ignore[valid-type]
        AfterValidator(distinct),
        Field(
            min_length=1,
            max_length=64,
            default_factory=lambda: [1, 2, 3, 4, 5],
            description="Seeds the chosen configurations train on: never used to choose.",
            json_schema_extra={"uniqueItems": True},
        ),
    ]
    prune: PruneSpec | None = None


TUNE_EXAMPLE: dict[str, Any] = {
    "name": "tuned sgd vs adam",
    "dataset": {"name": "digits"},
    "model": {"preset": "mlp", "hidden_units": [128], "dropout": 0.2},
    "optimizers": [
        {"name": "sgd", "momentum": 0.9, "search": {"learning_rate": {"log_uniform": [1e-4, 1.0]}}},
        {
            "name": "adam",
            "search": {
                "learning_rate": {"log_uniform": [1e-5, 1e-1]},
                "epsilon": {"log_uniform": [1e-10, 1.0]},
            },
        },
    ],
    "tuning": {
        "trials": 16,
        "sampler": "sobol",
        "select_by": "val_accuracy",
        "tuning_seeds": [0],
        "final_seeds": [1, 2, 3, 4, 5],
        "prune": {"rungs": [2, 6], "keep": 0.5},
    },
    "epochs": 20,
    "batch_size": 32,
}


class TuneSpec(TrainSpec):
    """A tuned comparison: every optimizer searches its space with the same number of trials
    on the tuning seeds (phase 1); the configuration with the best validation value is
    chosen; the chosen configurations train on the final seeds (phase 2, queued by the
    service) and are judged on the test set. One batch size and one epoch budget."""

    model_config = ConfigDict(json_schema_extra={"examples": [TUNE_EXAMPLE]})

    kind: Literal["tune"] = "tune"  # type: ignore[assignment]
    inferred_from: ClassVar[str | None] = "tuning"
    optimizers: list[TunedOptimizerSpec] = Field(min_length=1, max_length=16)  # type: ignore[assignment]
    tuning: TuningSpec = Field(
        description="The protocol; its presence makes a job a tuned comparison."
    )
    # The seeds are the tuning's: phase 1's and phase 2's.
    seeds: SkipJsonSchema[list[int]] = Field(default_factory=list, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _no_seeds(cls, data: Any) -> Any:
        if isinstance(data, dict) and "seeds" in data:
            raise ValueError(
                "a tuned comparison's seeds are tuning.tuning_seeds (to choose) and "
                "tuning.final_seeds (to judge); drop seeds"
            )
        return data

    @model_validator(mode="after")
    def _protocol(self) -> "TuneSpec":
        if len(self.batch_size) != 1 or len(self.epochs) != 1:
            raise ValueError("a tuned comparison trains at one batch_size and one epochs budget")
        for i, optimizer in enumerate(self.optimizers):
            problem = check_search(optimizer)
            if problem:
                raise ValueError(f"optimizers[{i}] ({optimizer.canonical}): {problem}")
        budgets = self.budgets()
        if len(set(budgets)) > 1 and not self.tuning.allow_unequal_budgets:
            raise ValueError(
                "the optimizers' search budgets differ ("
                + ", ".join(
                    f"{label}: {n}" for label, n in zip(self.arm_labels(), budgets, strict=True)
                )
                + "); unequal budgets bias a comparison (an optimizer searching nothing has one "
                "configuration): search every optimizer, or set tuning.allow_unequal_budgets"
            )
        if self.tuning.prune:
            self.tuning.prune.rungs.sort()
            late = [r for r in self.tuning.prune.rungs if r >= self.max_epochs]
            if late:
                raise ValueError(
                    f"tuning.prune.rungs must be before the last epoch ({self.max_epochs}); "
                    f"got {late}"
                )
        both = set(self.tuning.tuning_seeds) & set(self.tuning.final_seeds)
        if both:
            raise ValueError(
                f"seeds {sorted(both)} are both tuning and final seeds: the verdict must come "
                "from seeds never used to choose"
            )
        for i, optimizer in enumerate(self.optimizers):
            if self.tuning.sampler == "grid" and self.resolved:
                levels = grid_levels(optimizer.search, budgets[i])
                if isinstance(levels, str):
                    raise ValueError(f"optimizers[{i}] ({optimizer.canonical}): {levels}")
        if self.task is not None:
            self._settle_selection()
        return self

    def _settle_selection(self) -> None:
        metric = self.tuning.select_by or self.default_metric()
        if not metric.startswith("val_"):
            raise ValueError(
                "a tuned comparison selects on validation data: give the dataset a "
                "validation_split (or an upload with validation data)"
            )
        from core.kinds.train.spec import TASK_METRICS

        if metric not in TASK_METRICS[self.task or "classification"]:
            raise ValueError(f"tuning.select_by: a {self.task} does not record {metric}")
        self.tuning.select_by = metric  # type: ignore[assignment]

    def check_uploads(self, meta: Any) -> list[Any]:
        found = super().check_uploads(meta)
        if not found:
            try:
                self._settle_selection()
            except ValueError as error:
                return [(("tuning", "select_by"), str(error))]
        return found

    @property
    def resolved(self) -> bool:
        """Whether every interval taken from a range test has been written in."""
        return all(
            d.resolved
            for o in self.optimizers
            for d in o.search.values()
            if isinstance(d, FromRangeTest)
        )

    def referenced_jobs(self) -> list[tuple[tuple[str | int, ...], Any]]:
        return [
            (("optimizers", i, "search", key, "from_range_test"), dist.from_range_test)
            for i, o in enumerate(self.optimizers)
            for key, dist in o.search.items()
            if isinstance(dist, FromRangeTest)
        ]

    def use_jobs(self, found: Mapping[Any, Referenced]) -> list[Problem]:
        """Each from_range_test takes the usable interval the range test found for the arm of
        the same label (or, unlabelled, the same optimizer) at the same batch size."""
        problems: list[Problem] = []
        for i, optimizer in enumerate(self.optimizers):
            for key, dist in optimizer.search.items():
                if isinstance(dist, FromRangeTest):
                    where = ("optimizers", i, "search", key, "from_range_test")
                    why = take_interval(dist, optimizer, self, found)
                    if why:
                        problems.append((where, why))
        if problems:
            return problems
        try:
            type(self).model_validate(self.model_dump(mode="json"))
        except ValueError as error:
            return [(("optimizers",), f"with the range test's interval: {error}")]
        return []

    # ------------------------------------------------------------ the protocol

    def budgets(self) -> list[int]:
        """Trials per optimizer: the given number, or one for an optimizer searching nothing."""
        trials = self.tuning.trials
        if isinstance(trials, list):
            if len(trials) != len(self.optimizers):
                raise ValueError(
                    f"tuning.trials lists {len(trials)} numbers for {len(self.optimizers)} "
                    "optimizers"
                )
            return list(trials)
        return [trials if o.search else 1 for o in self.optimizers]

    @property
    def metric(self) -> str:
        return self.tuning.select_by or self.default_metric()

    def configurations(self) -> list[list[dict[str, Any]]]:
        """Each optimizer's trials: the whole configuration of each, in trial order."""
        found = []
        for optimizer, n in zip(self.optimizers, self.budgets(), strict=True):
            base = optimizer.config
            drawn = draw(optimizer.search, n, self.tuning.sampler, self.tuning.sampler_seed)
            found.append([apply(base, values) for values in drawn])
        return found

    def drawn(self) -> list[list[dict[str, Any]]]:
        """Each optimizer's trials: only the searched values."""
        return [
            draw(o.search, n, self.tuning.sampler, self.tuning.sampler_seed)
            for o, n in zip(self.optimizers, self.budgets(), strict=True)
        ]

    def expand(self) -> list[RunPlan]:
        """Phase 1: every trial of every optimizer on every tuning seed, trial by trial, so
        the optimizers' searches advance together. Phase 2 is planned when phase 1 ends."""
        labels = self.arm_labels()
        configs = self.configurations()
        runs: list[RunPlan] = []
        for trial in range(max(self.budgets())):
            for arm, trials in enumerate(configs):
                if trial >= len(trials):
                    continue
                for seed in self.tuning.tuning_seeds:
                    runs.append(
                        RunPlan(
                            index=len(runs),
                            arm=arm,
                            label=labels[arm],
                            optimizer=trials[trial],
                            budget=self.max_epochs,
                            seed=seed,
                            batch_size=self.batch_size[0],
                            phase=1,
                            trial=trial,
                        )
                    )
        return runs

    def final_runs(
        self, chosen: dict[int, tuple[int, dict[str, Any]]], start: int
    ) -> list[RunPlan]:
        """Phase 2: each chosen configuration on every final seed, seed by seed."""
        labels = self.arm_labels()
        runs: list[RunPlan] = []
        for seed in self.tuning.final_seeds:
            for arm in sorted(chosen):
                trial, config = chosen[arm]
                runs.append(
                    RunPlan(
                        index=start + len(runs),
                        arm=arm,
                        label=labels[arm],
                        optimizer=config,
                        budget=self.max_epochs,
                        seed=seed,
                        batch_size=self.batch_size[0],
                        phase=2,
                        trial=trial,
                    )
                )
        return runs

    def total_runs(self) -> int:
        return sum(self.budgets()) * len(self.tuning.tuning_seeds) + len(self.optimizers) * len(
            self.tuning.final_seeds
        )

    def problems(self, settings: Settings) -> list[tuple[tuple[str | int, ...], str]]:
        found = [p for p in super().problems(settings) if p[0] != ("optimizers",)]
        total = self.total_runs()
        if total > settings.max_runs_per_job:
            found.append(
                (
                    ("tuning", "trials"),
                    f"this job is {self.size(total)}; the limit is {settings.max_runs_per_job}",
                )
            )
        return found

    def size(self, runs: int) -> str:
        budgets = self.budgets()
        return (
            f"{self.total_runs()} runs ({sum(budgets)} trials x "
            f"{len(self.tuning.tuning_seeds)} tuning seeds, then {len(self.optimizers)} "
            f"chosen configurations x {len(self.tuning.final_seeds)} final seeds)"
        )


def _param_table(optimizer: TunedOptimizer, key: str) -> tuple[Any, str] | str:
    """The registry entry a search key addresses, or why it addresses none."""
    head, _, tail = key.partition(".")
    table = optimizer_params(optimizer.canonical)
    if head not in table:
        return f"search: {optimizer.canonical} has no argument {head!r}"
    if not tail:
        if isinstance(optimizer.config.get("learning_rate"), dict) and head == "learning_rate":
            return (
                "search: learning_rate is a schedule here; search its arguments, such as "
                "learning_rate.initial_learning_rate"
            )
        return table[head], head
    schedule = optimizer.config.get(head)
    if head != "learning_rate" or not isinstance(schedule, dict):
        return f"search: {key!r} addresses a schedule's argument, but {head} is not a schedule"
    params = SCHEDULE_PARAMS.get(schedule["schedule"], {})
    if tail not in params:
        return f"search: the {schedule['schedule']} schedule has no argument {tail!r}"
    return params[tail], key


def _brief(value: Any) -> str:
    text = (
        value.model_dump_json(exclude_defaults=True)
        if hasattr(value, "model_dump_json")
        else repr(value)
    )
    return text if len(text) <= 80 else text[:77] + "..."


def take_interval(
    dist: FromRangeTest,
    optimizer: TunedOptimizer,
    spec: "TuneSpec",
    found: Mapping[Any, Referenced],
) -> str | None:
    """Write the range test's usable interval for this optimizer into `dist`; or why not. The
    interval belongs to a dataset, model and loss: the range test must have run on this
    job's."""
    from core.kinds.lr_range.compare import LrRangeComparison

    batch_size = spec.batch_size[0]
    job_id, job = dist.from_range_test, found[dist.from_range_test]
    if job.kind != "lr_range" or not isinstance(job.comparison, LrRangeComparison):
        return f"job {job_id} is a {job.kind} job, not a learning-rate range test (lr_range)"
    if job.status != "succeeded":
        return f"range test {job_id} is {job.status}; take its interval once it has succeeded"
    for part in ("dataset", "model", "loss"):
        theirs, mine = getattr(job.spec, part, None), getattr(spec, part)
        if theirs != mine:
            return (
                f"range test {job_id} ran on another {part} ({_brief(theirs)}; this job: "
                f"{_brief(mine)}): its interval belongs to its own; run one on this {part}"
            )
    want = optimizer.label or optimizer.canonical
    arms = [
        a
        for a in job.comparison.arms
        if (a.label == optimizer.label if optimizer.label else a.optimizer == optimizer.canonical)
        and a.batch_size in (None, batch_size)
    ]
    if len(arms) != 1:
        have = ", ".join(f"{a.label} (batch size {a.batch_size})" for a in job.comparison.arms)
        many = "no" if not arms else "more than one"
        return (
            f"range test {job_id} has {many} arm {want!r} at batch size {batch_size} (label "
            f"the optimizer to choose); it has {have}"
        )
    usable = arms[0].suggestion.usable
    if usable is None:
        return f"range test {job_id} found no usable interval for {want!r} (its loss never fell)"
    dist.log_uniform = [float(f"{usable[0]:.6g}"), float(f"{usable[1]:.6g}")]
    return None


def check_search(optimizer: TunedOptimizer) -> str | None:
    """Why the optimizer's search is not one Keras could run, if it is not: each key must
    be an argument of it, searched by a distribution of its type, within its bounds."""
    given = optimizer.model_fields_set
    for key, dist in optimizer.search.items():
        found = _param_table(optimizer, key)
        if isinstance(found, str):
            return found
        param, _ = found
        if "." not in key and key in given:
            return f"search: {key} is both given and searched; give one"
        if isinstance(dist, FromRangeTest):
            if key != "learning_rate":
                return f"search {key}: from_range_test gives an interval of learning_rate only"
            if not dist.resolved:
                continue  # the service writes the interval in at submission, then checks it
        if not isinstance(dist, DIMENSION_KINDS[param.kind]):
            allowed = ", ".join(DISTRIBUTION_NAMES[t] for t in DIMENSION_KINDS[param.kind])
            allowed = allowed or "nothing (not searchable)"
            return f"search {key}: a {param.kind} argument takes {allowed}"
        why = dist.check()
        if why:
            return f"search {key}: {why}"
        values = dist.choice if isinstance(dist, Choice) else list(dist.ends())
        if param.kind == "int":
            values = [int(v) if isinstance(v, float) and v.is_integer() else v for v in values]
        for value in values:
            config = apply(optimizer.config, {key: value})
            try:
                type(optimizer).model_validate(_without_search(config))
            except ValidationError as error:
                first = error.errors()[0]["msg"]
                return (
                    f"search {key}: {value!r} is not a value {optimizer.canonical} takes ({first})"
                )
    return None


def _without_search(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k != "search"}
