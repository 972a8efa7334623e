"""The 2-D optimizer race's contract: optimizers step the two variables of a test function
from one start."""

from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field, StrictFloat

from core.contract import ContractModel, Integer
from core.kinds.base import JobSpec
from core.kinds.race.objectives import OBJECTIVES, ObjectiveName
from core.runs import RunPlan

Coordinate = Annotated[StrictFloat, Field(ge=-1e6, le=1e6, allow_inf_nan=False)]


class ObjectiveSpec(ContractModel):
    """A test function of (x, y) and where the optimizers start."""

    function: ObjectiveName
    start: list[Coordinate] | None = Field(
        default=None,
        min_length=2,
        max_length=2,
        description="[x, y]; defaults to the function's customary start.",
    )

    @property
    def start_point(self) -> tuple[float, float]:
        if self.start is None:
            return OBJECTIVES[self.function].start
        return (self.start[0], self.start[1])


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


class RaceSpec(JobSpec):
    """The optimizers step the two variables of a test function from one start: a race.
    A body with an `objective` and no `kind` is a race."""

    model_config = ConfigDict(json_schema_extra={"examples": [RACE_EXAMPLE]})
    inferred_from: ClassVar[str | None] = "objective"

    kind: Literal["race"] = "race"
    objective: ObjectiveSpec
    steps: Integer = Field(default=500, ge=1, le=100_000, description="Steps per optimizer.")
    tolerance: StrictFloat = Field(
        default=0.01,
        gt=0.0,
        allow_inf_nan=False,
        description="A run has arrived when it is this close to a minimum. The saddle has "
        "no minimum: there a run has arrived when it escaped, f(x, y) < -1.",
    )

    def expand(self) -> list[RunPlan]:
        """One run per optimizer; a race has no seeds and no batches."""
        labels = self.arm_labels()
        return [
            RunPlan(index=i, arm=i, label=labels[i], optimizer=o.config, budget=self.steps)
            for i, o in enumerate(self.optimizers)
        ]

    def display_name(self) -> str:
        names = " vs ".join(dict.fromkeys(o.canonical for o in self.optimizers))
        return self.name or f"{self.objective.function}: {names}"
