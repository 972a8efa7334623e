"""The learning-rate range test's contract."""

from typing import Any, ClassVar, Literal

from pydantic import (
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StrictFloat,
    field_serializer,
    model_validator,
)

from core.contract import ContractModel, Integer, integer
from core.kinds.base import Problem
from core.kinds.train.spec import DataModelSpec, _sweep, batch_size_problems
from core.runs import RunPlan
from core.settings import Settings

RANGE_EXAMPLE: dict[str, Any] = {
    "kind": "lr_range",
    "dataset": {"name": "fashion_mnist"},
    "model": {"preset": "mlp"},
    "optimizers": ["sgd", "adam", "rmsprop"],
    "batch_size": 64,
    "lr_range": {"min": 1e-7, "max": 10, "steps": 200, "smoothing": 0.98, "stop_factor": 4},
}


def _rateless(config: Any) -> Any:
    return (
        {k: v for k, v in config.items() if k != "learning_rate"}
        if isinstance(config, dict)
        else config
    )


class RangeSpec(ContractModel):
    """The learning rate rises exponentially from min to max over steps mini-batch steps."""

    min: StrictFloat = Field(default=1e-7, gt=0, le=1e3, allow_inf_nan=False)
    max: StrictFloat = Field(default=10.0, gt=0, le=1e4, allow_inf_nan=False)
    steps: Integer = Field(default=100, ge=5, le=10_000, description="Steps per optimizer.")
    smoothing: StrictFloat = Field(
        default=0.98,
        ge=0,
        lt=1,
        description="beta of the loss's exponential moving average (0: no smoothing).",
    )
    stop_factor: StrictFloat | None = Field(
        default=4.0,
        gt=1,
        le=1e6,
        allow_inf_nan=False,
        description="The test ends when the smoothed loss exceeds this many times its best "
        "(or is not finite): its normal end, not a divergence. null: run every step.",
    )

    @model_validator(mode="after")
    def _rising(self) -> "RangeSpec":
        if self.max <= self.min:
            raise ValueError(f"max ({self.max:g}) must be above min ({self.min:g})")
        return self


class LrRangeSpec(DataModelSpec):
    """Leslie Smith's learning-rate range test: from the seed's initial weights, each
    optimizer takes `steps` mini-batch steps while its learning rate rises exponentially from
    `min` to `max`. The optimizers give no learning rate: the test sets it. A body with
    `lr_range` and no `kind` is a range test."""

    model_config = ConfigDict(json_schema_extra={"examples": [RANGE_EXAMPLE]})
    inferred_from: ClassVar[str | None] = "lr_range"

    kind: Literal["lr_range"] = "lr_range"
    lr_range: RangeSpec = Field(default_factory=RangeSpec)
    batch_size: _sweep(  # type: ignore[valid-type]
        integer(ge=1),
        max_length=32,
        description="A value or a list: the range depends on the batch size.",
        default=[32],
    )
    seeds: _sweep(  # type: ignore[valid-type]
        integer(ge=0, lt=2**31),
        max_length=16,
        description="A seed or a list; within a seed every optimizer starts from the same "
        "weights and sees the same batches.",
        default=[0],
    )

    @model_validator(mode="after")
    def _no_learning_rate(self) -> "LrRangeSpec":
        for i, optimizer in enumerate(self.optimizers):
            given = {"learning_rate", "lr", "decay"} & optimizer.model_fields_set
            if given:
                raise ValueError(
                    f"optimizers[{i}] gives {' and '.join(sorted(given))}; the range test "
                    "sets the learning rate itself (from lr_range.min to lr_range.max)"
                )
        return self

    @field_serializer("optimizers", mode="wrap")
    def _without_rate(self, value: Any, handler: SerializerFunctionWrapHandler) -> Any:
        """Stored and shown without a learning rate: the test sets it, step by step."""
        return [_rateless(o) for o in handler(value)]

    def expand(self) -> list[RunPlan]:
        """One run per seed x batch size x optimizer, seed first."""
        labels = self.arm_labels()
        several = len(self.batch_size) > 1
        runs: list[RunPlan] = []
        for seed in self.seeds:
            for batch_size in self.batch_size:
                for arm, optimizer in enumerate(self.optimizers):
                    runs.append(
                        RunPlan(
                            index=len(runs),
                            arm=arm,
                            label=f"{labels[arm]} bs={batch_size}" if several else labels[arm],
                            optimizer=_rateless(optimizer.config),
                            budget=self.lr_range.steps,
                            seed=seed,
                            batch_size=batch_size,
                        )
                    )
        return runs

    def size(self, runs: int) -> str:
        return (
            f"{runs} runs ({len(self.optimizers)} optimizers x {len(self.batch_size)} batch "
            f"sizes x {len(self.seeds)} seeds)"
        )

    def display_name(self) -> str:
        names = " vs ".join(dict.fromkeys(o.canonical for o in self.optimizers))
        return self.name or f"LR range test: {names}"

    def problems(self, settings: Settings) -> list[Problem]:
        return super().problems(settings) + batch_size_problems(self.batch_size, settings)

    @classmethod
    def settings_bounds(cls, settings: Settings) -> dict[str, int]:
        return {"batch_size": settings.max_batch_size}
