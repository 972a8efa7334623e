"""The optimizer contract: one pydantic model per Keras optimizer, generated from the registry.

Each model has that optimizer's own arguments and the shared ones, with Keras's defaults and
bounds, an optional `label`, and the Keras 2 spellings `lr` and `decay`. The union of the
models, discriminated on `name`, is what a job accepts, and it is what `/openapi.json` shows:
the schema and the API accept the same optimizers. A bare name ("adam", or Keras's class name
"Adam") stands for that optimizer with its defaults.
"""

import itertools
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    GetJsonSchemaHandler,
    StrictBool,
    StrictFloat,
    Tag,
    create_model,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from core.contract import ContractModel, Integer, integer, text
from core.optimizers.registry import (
    CLIP_ARGUMENTS,
    OPTIMIZER_CLASSES,
    OPTIMIZER_PARAMS,
    REQUIRED,
    SCHEDULE_PARAMS,
    Param,
    optimizer_params,
)


def _annotation(param: Param) -> Any:
    """The type of one registry argument, its bounds included."""
    if param.kind == "bool":
        annotation: Any = StrictBool
    elif param.kind == "str_list":
        name = text(min_length=1, max_length=100)  # stored: no NUL
        annotation = Annotated[list[name], Field(min_length=1, max_length=32)]  # type: ignore[valid-type]
    elif param.kind == "int":
        annotation = integer(**param.bounds())
    else:
        bounds: dict[str, Any] = param.bounds()
        annotation = Annotated[StrictFloat, Field(allow_inf_nan=False, **bounds)]
    return annotation | None if param.nullable else annotation


def _fields(table: dict[str, Param]) -> dict[str, Any]:
    return {
        key: (_annotation(param), ... if param.default is REQUIRED else param.default)
        for key, param in table.items()
    }


# ---------------------------------------------------------------- schedules


class Schedule(ContractModel):
    """A learning-rate schedule (keras.optimizers.schedules); its `schedule` names which."""

    schedule: str

    @property
    def config(self) -> dict[str, Any]:
        return self.model_dump()


def _schedule_model(kind: str) -> type[Schedule]:
    fields = {"schedule": (Literal[kind], ...), **_fields(SCHEDULE_PARAMS[kind])}
    model: type[Schedule] = create_model(
        f"{kind.title().replace('_', '')}Schedule",
        __base__=Schedule,
        __doc__=f"keras.optimizers.schedules: the {kind} schedule. A null "
        "initial_learning_rate takes the optimizer's learning rate.",
        **fields,
    )
    return model


class Segment(ContractModel):
    steps: Integer = Field(ge=1, le=10**9, description="Optimizer steps at this rate.")
    value: StrictFloat = Field(gt=0, allow_inf_nan=False, description="The learning rate.")


class PiecewiseSchedule(Schedule):
    """PiecewiseConstantDecay as segments: each rate for its number of steps, then `then`.

    Keras's boundaries [1000, 3000] and values [0.1, 0.01, 0.001] are segments
    [{steps: 1000, value: 0.1}, {steps: 2000, value: 0.01}] then 0.001.
    """

    schedule: Literal["piecewise_constant"]
    segments: list[Segment] = Field(min_length=1, max_length=64)
    then: StrictFloat = Field(gt=0, allow_inf_nan=False, description="The rate after them.")

    def keras_arguments(self) -> dict[str, Any]:
        """PiecewiseConstantDecay's own arguments."""
        boundaries = list(itertools.accumulate(s.steps for s in self.segments))
        return {"boundaries": boundaries, "values": [s.value for s in self.segments] + [self.then]}


SCHEDULE_MODELS: dict[str, type[Schedule]] = {
    **{kind: _schedule_model(kind) for kind in SCHEDULE_PARAMS},
    "piecewise_constant": PiecewiseSchedule,
}
if TYPE_CHECKING:
    AnySchedule = Schedule
else:
    AnySchedule = Annotated[
        Union[tuple(SCHEDULE_MODELS.values())],  # noqa: UP007
        Discriminator("schedule"),
    ]


# ---------------------------------------------------------------- optimizers


def _both_numbers(*names: str) -> dict[str, Any]:
    return {"required": list(names), "properties": {n: {"type": "number"} for n in names}}


def _conflicts() -> list[dict[str, Any]]:
    """The combinations every optimizer model refuses, as JSON Schema `not` clauses."""
    lr_twice = {"required": ["lr", "learning_rate"], "properties": {"lr": {"type": "number"}}}
    clauses: list[dict[str, Any]] = [{"not": lr_twice}]
    clauses += [{"not": _both_numbers(a, b)} for a, b in itertools.combinations(CLIP_ARGUMENTS, 2)]
    clauses.append(
        {
            "not": {
                "required": ["decay", "learning_rate"],
                "properties": {
                    "decay": {"type": "number", "exclusiveMinimum": 0},
                    "learning_rate": {"type": "object"},
                },
            }
        }
    )
    return clauses


class Optimizer(ContractModel):
    """One arm: a Keras optimizer with any of its arguments (Keras's defaults otherwise)."""

    model_config = ConfigDict(json_schema_extra={"allOf": _conflicts()})  # type: ignore[dict-item]

    canonical: ClassVar[str] = ""
    name: str
    label: text(min_length=1, max_length=100) | None = Field(  # type: ignore[valid-type]
        default=None, description="How the arm is called."
    )
    lr: StrictFloat | None = Field(
        default=None, gt=0, allow_inf_nan=False, description="Keras 2 spelling of learning_rate."
    )
    decay: StrictFloat | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="Keras 2's decay: lr / (1 + decay * step), inverse-time decay per step.",
    )
    # Each optimizer's model declares its own, with its default and bounds.
    learning_rate: Any = None

    @model_validator(mode="before")
    @classmethod
    def _known_arguments(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = [k for k in data if k not in cls.model_fields]
            if unknown:
                extras = ("label", "lr", "decay")
                ordered = [*optimizer_params(cls.canonical), *extras]
                accepted = ", ".join(ordered)
                raise ValueError(
                    f"unknown argument {unknown[0]!r} for optimizer {cls.canonical!r}; "
                    f"accepted: {accepted}"
                )
        return data

    @model_validator(mode="after")
    def _coherent(self) -> "Optimizer":
        given = self.model_fields_set
        if self.lr is not None and "learning_rate" in given:
            raise ValueError("give learning_rate or its Keras 2 spelling lr, not both")
        clips = [k for k in CLIP_ARGUMENTS if getattr(self, k) is not None]
        if len(clips) > 1:
            raise ValueError(f"set only one of {', '.join(CLIP_ARGUMENTS)}; got {', '.join(clips)}")
        if self.decay and isinstance(getattr(self, "learning_rate", None), Schedule):
            raise ValueError("decay (Keras 2) cannot be combined with a learning-rate schedule")
        return self

    @property
    def config(self) -> dict[str, Any]:
        """The whole configuration: Keras 2 names mapped, defaults in, learning_rate first."""
        table = optimizer_params(self.canonical)
        learning_rate: Any = self.lr if self.lr is not None else self.learning_rate
        if self.decay:
            learning_rate = {
                "schedule": "inverse_time",
                "initial_learning_rate": learning_rate,
                "decay_steps": 1,
                "decay_rate": float(self.decay),
                "staircase": False,
            }
        elif isinstance(learning_rate, Schedule):
            learning_rate = learning_rate.config
            if learning_rate.get("initial_learning_rate", 0.0) is None:
                learning_rate["initial_learning_rate"] = table["learning_rate"].default
        rest = {k: getattr(self, k) for k in table if k != "learning_rate"}
        return {"name": self.canonical, "learning_rate": learning_rate, **rest}

    @model_serializer
    def _flat(self) -> dict[str, Any]:
        return {**self.config, **({"label": self.label} if self.label else {})}


def _rate_or_schedule(value: Any) -> str:
    return "schedule" if isinstance(value, dict | Schedule) else "rate"


def _learning_rate(param: Param) -> Any:
    """A constant rate or a schedule; errors speak of whichever was given."""
    return Annotated[
        Union[  # noqa: UP007
            Annotated[_annotation(param), Tag("rate")],
            Annotated[AnySchedule, Tag("schedule")],
        ],
        Discriminator(_rate_or_schedule),
    ]


def _optimizer_model(name: str) -> type[Optimizer]:
    table = optimizer_params(name)
    fields = _fields({k: v for k, v in table.items() if k != "learning_rate"})
    lr = table["learning_rate"]
    fields["learning_rate"] = (_learning_rate(lr), lr.default)
    fields["name"] = (Literal[name, OPTIMIZER_CLASSES[name]], ...)
    model: type[Optimizer] = create_model(
        OPTIMIZER_CLASSES[name],
        __base__=Optimizer,
        __doc__=f"keras.optimizers.{OPTIMIZER_CLASSES[name]}, with Keras's defaults.",
        **fields,
    )
    model.canonical = name
    return model


OPTIMIZER_MODELS: dict[str, type[Optimizer]] = {n: _optimizer_model(n) for n in OPTIMIZER_PARAMS}
NAMES: dict[str, str] = {
    spelling: name for name in OPTIMIZER_PARAMS for spelling in (name, OPTIMIZER_CLASSES[name])
}


def named_optimizer(value: Any) -> Any:
    """A bare name is that optimizer with its defaults; an unknown name is refused by name."""
    if isinstance(value, str):
        value = {"name": value}
    if isinstance(value, dict):
        name = value.get("name")
        if not isinstance(name, str):
            raise ValueError("an optimizer needs a name, such as 'sgd' or 'adam'")
        if name not in NAMES:
            raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZER_PARAMS)}")
    return value


class NameOrObject:
    """The schema of an optimizer item: a bare name, or one of the optimizer objects."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        objects = handler(core_schema)
        name = {"type": "string", "enum": list(NAMES), "description": "An optimizer's name."}
        return {"anyOf": [name, objects]}


if TYPE_CHECKING:
    OptimizerSpec = Optimizer
else:
    OptimizerSpec = Annotated[
        Union[tuple(OPTIMIZER_MODELS.values())],  # noqa: UP007
        Discriminator("name"),
        BeforeValidator(named_optimizer),
        NameOrObject(),
    ]


LABEL_LENGTH = 100  # a label is for reading; a longer description is cut (repeats are numbered)


def describe_optimizer(config: dict[str, Any]) -> str:
    """A short label: the name and every argument that differs from Keras's default."""
    table = optimizer_params(config["name"])
    changed = [
        f"{'lr' if key == 'learning_rate' else key}={_short(value)}"
        for key, value in config.items()
        if key != "name" and value != table[key].default
    ]
    label = f"{config['name']}({', '.join(changed)})" if changed else config["name"]
    return label if len(label) <= LABEL_LENGTH else label[: LABEL_LENGTH - 2] + "…)"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return str(value.get("schedule", "?"))
    return str(value)


def arm_labels(optimizers: list[Optimizer]) -> list[str]:
    """One distinct label per optimizer: the given one, else a description; repeats numbered."""
    labels: list[str] = []
    for opt in optimizers:
        base = opt.label or describe_optimizer(opt.config)
        label, n = base, 1
        while label in labels:
            n += 1
            label = f"{base} #{n}"
        labels.append(label)
    return labels
