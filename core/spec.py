"""The job contract: what a client may ask for, validated without Keras."""

import itertools
import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    field_validator,
    model_serializer,
    model_validator,
)

from core.objectives import OBJECTIVES, ObjectiveName
from core.optimizers import (
    CLIP_ARGUMENTS,
    OPTIMIZER_PARAMS,
    SCHEDULE_PARAMS,
    check_value,
    optimizer_params,
    resolve_arguments,
)

Metric = Literal["val_accuracy", "val_loss", "accuracy", "loss"]
LOWER_IS_BETTER = frozenset({"loss", "val_loss"})


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- optimizers


def _resolve_schedule(value: dict[str, Any], *, default_lr: float) -> dict[str, Any]:
    given = dict(value)
    kind = given.pop("schedule", None)
    if kind not in SCHEDULE_PARAMS:
        raise ValueError(
            f"learning_rate.schedule must be one of {', '.join(SCHEDULE_PARAMS)}, got {kind!r}"
        )
    resolved = resolve_arguments(given, SCHEDULE_PARAMS[kind], owner=f"schedule {kind!r}")
    if "initial_learning_rate" in resolved and resolved["initial_learning_rate"] is None:
        resolved["initial_learning_rate"] = default_lr
    if kind == "piecewise_constant":
        boundaries, values = resolved["boundaries"], resolved["values"]
        if len(values) != len(boundaries) + 1:
            raise ValueError("piecewise_constant needs one more value than boundaries")
        if any(a >= b for a, b in itertools.pairwise(boundaries)):
            raise ValueError("piecewise_constant boundaries must increase strictly")
    return {"schedule": kind, **resolved}


def _map_keras2(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """Keras 2 spellings from tutorials, given their Keras 3 meaning.

    `lr` is `learning_rate`; `decay` was inverse-time decay per step:
    lr_t = lr / (1 + decay * iterations), which is InverseTimeDecay(lr, 1, decay).
    """
    given = dict(given)
    if "lr" in given:
        if "learning_rate" in given:
            raise ValueError("give learning_rate or its Keras 2 spelling lr, not both")
        given["learning_rate"] = given.pop("lr")
    if "decay" in given:
        decay = given.pop("decay")
        if isinstance(decay, bool) or not isinstance(decay, int | float) or decay < 0:
            raise ValueError("decay (Keras 2) must be a number >= 0")
        if decay > 0:
            learning_rate = given.get(
                "learning_rate", OPTIMIZER_PARAMS[name]["learning_rate"].default
            )
            if isinstance(learning_rate, dict):
                raise ValueError("decay (Keras 2) cannot be combined with a schedule")
            given["learning_rate"] = {
                "schedule": "inverse_time",
                "initial_learning_rate": learning_rate,
                "decay_steps": 1,
                "decay_rate": float(decay),
            }
    return given


def resolve_optimizer(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """The full configuration of one optimizer: checked, Keras 2 names mapped, defaults in."""
    if name not in OPTIMIZER_PARAMS:
        raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZER_PARAMS)}")
    given = _map_keras2(name, given)
    table = optimizer_params(name)
    learning_rate = given.pop("learning_rate", None)
    resolved = resolve_arguments(given, table, owner=f"optimizer {name!r}")
    default_lr = table["learning_rate"].default
    # Keep learning_rate first: it is the argument people read first.
    resolved = {"learning_rate": resolved.pop("learning_rate"), **resolved}
    if isinstance(learning_rate, dict):
        resolved["learning_rate"] = _resolve_schedule(learning_rate, default_lr=default_lr)
    elif learning_rate is not None:
        resolved["learning_rate"] = check_value(
            learning_rate, table["learning_rate"], "learning_rate"
        )
    clips = [k for k in CLIP_ARGUMENTS if resolved.get(k) is not None]
    if len(clips) > 1:
        raise ValueError(f"set only one of {', '.join(CLIP_ARGUMENTS)}; got {', '.join(clips)}")
    return {"name": name, **resolved}


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return str(value.get("schedule", "?"))
    return str(value)


def describe_optimizer(config: dict[str, Any]) -> str:
    """A short label: the name and every argument that differs from Keras's default."""
    table = optimizer_params(config["name"])
    changed = [
        f"{'lr' if key == 'learning_rate' else key}={_short(value)}"
        for key, value in config.items()
        if key != "name" and value != table[key].default
    ]
    return f"{config['name']}({', '.join(changed)})" if changed else config["name"]


class OptimizerSpec(BaseModel):
    """One arm: a Keras optimizer by name with any of its arguments, or just its name."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                "adam",
                {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9, "nesterov": True},
                {"name": "sgd", "lr": 0.01, "decay": 1e-6, "momentum": 0.9, "nesterov": True},
                {
                    "name": "adam",
                    "label": "adam-cosine",
                    "learning_rate": {
                        "schedule": "cosine",
                        "initial_learning_rate": 0.003,
                        "decay_steps": 1000,
                    },
                },
            ]
        }
    )

    name: str
    label: str | None = None
    config: dict[str, Any]

    @model_validator(mode="before")
    @classmethod
    def _resolve(cls, data: Any) -> Any:
        if isinstance(data, str):
            data = {"name": data}
        if not isinstance(data, dict):
            raise ValueError("an optimizer is a name or an object with a name")
        given = dict(data)
        name = given.pop("name", None)
        if not isinstance(name, str):
            raise ValueError("optimizer needs a name, such as 'sgd' or 'adam'")
        label = given.pop("label", None)
        if label is not None and (not isinstance(label, str) or not 0 < len(label) <= 100):
            raise ValueError("label must be a string of 1 to 100 characters")
        return {
            "name": name.lower(),
            "label": label,
            "config": resolve_optimizer(name.lower(), given),
        }

    @model_serializer
    def _flat(self) -> dict[str, Any]:
        return {**self.config, **({"label": self.label} if self.label else {})}


# ---------------------------------------------------------------- datasets


@dataclass(frozen=True)
class DatasetInfo:
    input_shape: tuple[int, ...]
    num_classes: int
    train_examples: int


KERAS_DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo((8, 8, 1), 10, 1797),
    "mnist": DatasetInfo((28, 28, 1), 10, 60000),
    "fashion_mnist": DatasetInfo((28, 28, 1), 10, 60000),
    "cifar10": DatasetInfo((32, 32, 3), 10, 50000),
}


class _DatasetBase(Strict):
    validation_split: float = Field(
        default=0.2, ge=0.0, le=0.9, description="Share of the training data held out."
    )
    limit: int | None = Field(
        default=None, ge=10, description="Use at most this many examples (before the split)."
    )


class NamedDatasetSpec(_DatasetBase):
    """A dataset Keras knows (digits ships with scikit-learn and works offline)."""

    name: Literal["digits", "mnist", "fashion_mnist", "cifar10"]

    def info(self) -> DatasetInfo:
        return KERAS_DATASETS[self.name]


class SyntheticDatasetSpec(_DatasetBase):
    """Gaussian classes generated from a seed: any size, no download."""

    name: Literal["synthetic"]
    samples: int = Field(default=2000, ge=10, le=1_000_000)
    features: int = Field(default=20, ge=1, le=10_000)
    classes: int = Field(default=10, ge=2, le=1000)
    class_separation: float = Field(default=1.0, gt=0.0, le=100.0)
    data_seed: int = Field(default=0, ge=0, description="Fixes the data; run seeds fix the rest.")

    def info(self) -> DatasetInfo:
        return DatasetInfo((self.features,), self.classes, self.samples)


DatasetSpec = Annotated[NamedDatasetSpec | SyntheticDatasetSpec, Field(discriminator="name")]

# ---------------------------------------------------------------- models

Activation = Literal["relu", "tanh", "sigmoid", "gelu", "elu", "selu", "swish", "linear"]
Units = Annotated[int, Field(ge=1, le=65536)]


class MlpSpec(Strict):
    """Flatten, Dense layers with dropout after each, then Dense(classes) logits."""

    preset: Literal["mlp"]
    hidden_units: list[Units] = Field(default=[128], max_length=16)
    activation: Activation = "relu"
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)


class CnnSpec(Strict):
    """Conv2D + MaxPooling2D blocks, then an optional Dense layer, then logits."""

    preset: Literal["cnn"]
    filters: list[Annotated[int, Field(ge=1, le=4096)]] = Field(
        default=[32, 64], min_length=1, max_length=8
    )
    kernel_size: int = Field(default=3, ge=1, le=11)
    dense_units: int = Field(default=128, ge=0, le=65536)
    activation: Activation = "relu"
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)


class DenseLayer(Strict):
    type: Literal["dense"]
    units: Units
    activation: Activation = "relu"


class Conv2DLayer(Strict):
    type: Literal["conv2d"]
    filters: int = Field(ge=1, le=4096)
    kernel_size: int = Field(default=3, ge=1, le=11)
    activation: Activation = "relu"
    padding: Literal["same", "valid"] = "same"


class MaxPool2DLayer(Strict):
    type: Literal["max_pool2d"]
    pool_size: int = Field(default=2, ge=1, le=8)


class FlattenLayer(Strict):
    type: Literal["flatten"]


class DropoutLayer(Strict):
    type: Literal["dropout"]
    rate: float = Field(ge=0.0, lt=1.0)


class BatchNormLayer(Strict):
    type: Literal["batch_norm"]


LayerSpec = Annotated[
    DenseLayer | Conv2DLayer | MaxPool2DLayer | FlattenLayer | DropoutLayer | BatchNormLayer,
    Field(discriminator="type"),
]


class LayersSpec(Strict):
    """A validated list of layers; the output Dense(classes) is added after the last one."""

    preset: Literal["layers"]
    layers: list[LayerSpec] = Field(min_length=1, max_length=64)


ModelSpec = Annotated[MlpSpec | CnnSpec | LayersSpec, Field(discriminator="preset")]


def check_model_fits(model: MlpSpec | CnnSpec | LayersSpec, input_shape: tuple[int, ...]) -> None:
    """ValueError when the model's layers cannot take the dataset's input."""
    if isinstance(model, CnnSpec):
        if len(input_shape) != 3:
            raise ValueError("the cnn preset needs image data; this dataset gives vectors")
        side = min(input_shape[:2])
        if side < 2 ** len(model.filters):
            raise ValueError(
                f"{len(model.filters)} conv blocks halve {side}x{side} images below 1 pixel"
            )
    if isinstance(model, LayersSpec):
        height, width = (input_shape[0], input_shape[1]) if len(input_shape) == 3 else (0, 0)
        spatial = len(input_shape) == 3
        for i, layer in enumerate(model.layers):
            if isinstance(layer, Conv2DLayer | MaxPool2DLayer):
                if not spatial:
                    raise ValueError(f"layers[{i}] ({layer.type}) needs image input here")
                if isinstance(layer, MaxPool2DLayer):
                    height, width = height // layer.pool_size, width // layer.pool_size
                elif layer.padding == "valid":
                    cut = layer.kernel_size - 1
                    height, width = height - cut, width - cut
                if height < 1 or width < 1:
                    raise ValueError(f"layers[{i}] ({layer.type}) shrinks the image below 1 pixel")
            elif isinstance(layer, FlattenLayer):
                spatial = False


# ---------------------------------------------------------------- the job


class TargetSpec(Strict):
    """A value of a metric to reach: the comparison reports epochs and seconds to it."""

    metric: Metric = "val_accuracy"
    value: float


def _check_labels(optimizers: list[OptimizerSpec]) -> None:
    labels = [o.label for o in optimizers if o.label]
    for label in labels:
        if labels.count(label) > 1:
            raise ValueError(f"optimizers: the label {label!r} is used twice")


def _arm_labels(optimizers: list[OptimizerSpec]) -> list[str]:
    """One distinct label per optimizer: the given one, else a description."""
    labels: list[str] = []
    for opt in optimizers:
        base = opt.label or describe_optimizer(opt.config)
        label, n = base, 1
        while label in labels:
            n += 1
            label = f"{base} #{n}"
        labels.append(label)
    return labels


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, int | float) and not isinstance(value, bool) else value


def _distinct(values: list[int], field: str) -> list[int]:
    seen = set()
    for v in values:
        if v in seen:
            raise ValueError(f"{field} lists {v} twice")
        seen.add(v)
    return values


JOB_EXAMPLE: dict[str, Any] = {
    "name": "sgd-vs-adam-vs-rmsprop",
    "dataset": {"name": "digits", "validation_split": 0.2},
    "model": {"preset": "mlp", "hidden_units": [128], "dropout": 0.2},
    "optimizers": [
        {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9, "nesterov": True, "clipnorm": 1.0},
        {"name": "adam"},
        {"name": "rmsprop", "learning_rate": 0.001},
    ],
    "batch_size": [32, 128],
    "epochs": 10,
    "seeds": [0],
}


class JobSpec(Strict):
    """An optimizer comparison: every optimizer x batch size x seed is one run."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [JOB_EXAMPLE]})

    kind: Literal["train"] = "train"
    name: str | None = Field(default=None, max_length=200)
    dataset: DatasetSpec = Field(default_factory=lambda: NamedDatasetSpec(name="digits"))
    model: ModelSpec = Field(default_factory=lambda: MlpSpec(preset="mlp"))
    optimizers: list[OptimizerSpec] = Field(min_length=1, max_length=64)
    batch_size: list[Annotated[int, Field(ge=1)]] = Field(
        default=[32], min_length=1, max_length=32, description="A value or a list."
    )
    epochs: list[Annotated[int, Field(ge=1)]] = Field(
        default=[10],
        min_length=1,
        max_length=64,
        description="A budget or a list; one run trains to the largest and is read at each.",
    )
    seeds: list[Annotated[int, Field(ge=0, lt=2**31)]] = Field(
        default=[0], min_length=1, max_length=64, description="A seed or a list."
    )
    evaluate_initial: bool = Field(
        default=True, description="Record epoch 0: the metrics of the initial weights."
    )
    target: TargetSpec | None = None

    @field_validator("batch_size", "epochs", "seeds", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("batch_size", "epochs", "seeds")
    @classmethod
    def _no_repeats(cls, value: list[int], info: Any) -> list[int]:
        return _distinct(value, info.field_name)

    @field_validator("epochs")
    @classmethod
    def _ascending(cls, value: list[int]) -> list[int]:
        return sorted(value)

    @model_validator(mode="after")
    def _coherent(self) -> "JobSpec":
        try:
            check_model_fits(self.model, self.dataset.info().input_shape)
        except ValueError as error:
            raise ValueError(f"model: {error} (dataset {self.dataset.name!r})") from error
        _check_labels(self.optimizers)
        return self

    @property
    def max_epochs(self) -> int:
        return max(self.epochs)

    def arm_labels(self) -> list[str]:
        return _arm_labels(self.optimizers)

    def display_name(self) -> str:
        return self.name or " vs ".join(dict.fromkeys(o.name for o in self.optimizers))


# ---------------------------------------------------------------- the 2-D race


class ObjectiveSpec(Strict):
    """A test function of (x, y) and where the optimizers start."""

    function: ObjectiveName
    start: tuple[float, float] | None = Field(
        default=None, description="Defaults to the function's customary start."
    )

    @field_validator("start")
    @classmethod
    def _finite(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not all(math.isfinite(v) and abs(v) <= 1e6 for v in value):
            raise ValueError("start must be two finite numbers within +-1e6")
        return value

    @property
    def start_point(self) -> tuple[float, float]:
        return self.start or OBJECTIVES[self.function].start


RACE_EXAMPLE: dict[str, Any] = {
    "name": "rosenbrock-race",
    "objective": {"function": "rosenbrock", "start": [-1.5, 2.0]},
    "optimizers": [
        {"name": "sgd", "learning_rate": 0.0005},
        {"name": "sgd", "label": "momentum", "learning_rate": 0.0005, "momentum": 0.9},
        {"name": "rmsprop", "learning_rate": 0.01},
        {"name": "adam", "learning_rate": 0.05},
    ],
    "steps": 500,
}


class RaceSpec(Strict):
    """The optimizers step the two variables of a test function from one start: a race."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [RACE_EXAMPLE]})

    kind: Literal["race"] = "race"
    name: str | None = Field(default=None, max_length=200)
    objective: ObjectiveSpec
    optimizers: list[OptimizerSpec] = Field(min_length=1, max_length=64)
    steps: int = Field(default=500, ge=1, le=100_000, description="Optimizer steps per run.")
    tolerance: float = Field(
        default=0.01,
        gt=0.0,
        description="A run has arrived when it is this close to a minimum. The saddle has "
        "no minimum: there a run has arrived when it escaped, f(x, y) < -1.",
    )

    @model_validator(mode="after")
    def _coherent(self) -> "RaceSpec":
        _check_labels(self.optimizers)
        return self

    @property
    def max_epochs(self) -> int:
        return self.steps

    @property
    def seeds(self) -> list[int]:
        return [0]

    @property
    def batch_size(self) -> list[int]:
        return [1]

    def arm_labels(self) -> list[str]:
        return _arm_labels(self.optimizers)

    def display_name(self) -> str:
        names = " vs ".join(dict.fromkeys(o.name for o in self.optimizers))
        return self.name or f"{self.objective.function}: {names}"


def _job_kind(data: Any) -> str:
    if isinstance(data, dict):
        kind = data.get("kind")
        if kind is None:
            return "race" if "objective" in data else "train"
        return str(kind)
    return str(getattr(data, "kind", "train"))


JOB_KINDS = ("train", "race")
AnyJobSpec = Annotated[
    Annotated[JobSpec, Tag("train")] | Annotated[RaceSpec, Tag("race")],
    Discriminator(
        _job_kind,
        custom_error_type="job_kind",
        custom_error_message="kind must be 'train' (the default) or 'race'",
    ),
]
_ANY_JOB: TypeAdapter[JobSpec | RaceSpec] = TypeAdapter(AnyJobSpec)


def parse_job(data: Any) -> JobSpec | RaceSpec:
    """A stored or submitted job of either kind."""
    return _ANY_JOB.validate_python(data)


@dataclass(frozen=True)
class Limits:
    max_runs_per_job: int
    max_epochs: int
    max_batch_size: int


def check_limits(
    spec: JobSpec | RaceSpec, limits: Limits
) -> list[tuple[tuple[str | int, ...], str]]:
    """Where the job exceeds the service's configured limits, as (location, reason) pairs."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    if isinstance(spec, JobSpec) and spec.max_epochs > limits.max_epochs:
        problems.append(
            (
                ("epochs",),
                f"{spec.max_epochs} epochs exceed this service's limit of {limits.max_epochs}",
            )
        )
    for i, size in enumerate(spec.batch_size):
        if size > limits.max_batch_size:
            problems.append(
                (
                    ("batch_size", i),
                    f"{size} exceeds the largest batch size {limits.max_batch_size}",
                )
            )
    runs = len(spec.optimizers) * len(spec.batch_size) * len(spec.seeds)
    if runs > limits.max_runs_per_job:
        problems.append(
            (
                ("optimizers",),
                f"this job is {runs} runs ({len(spec.optimizers)} optimizers x "
                f"{len(spec.batch_size)} batch sizes x {len(spec.seeds)} seeds); "
                f"the limit is {limits.max_runs_per_job}",
            )
        )
    return problems
