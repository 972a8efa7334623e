"""The training job's contract: a dataset, a model and a sweep over optimizers, batch sizes,
epoch budgets and seeds. Validated without Keras."""

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    model_validator,
)

from core.architectures import MlpSpec, ModelSpec, check_model_fits
from core.contract import ContractModel, integer
from core.datasets import DatasetSpec, NamedDatasetSpec
from core.kinds.base import JobSpec, OneOrMany, distinct, one_or_many
from core.runs import RunPlan
from core.settings import Settings

Metric = Literal["val_accuracy", "val_loss", "accuracy", "loss"]
LOWER_IS_BETTER = frozenset({"loss", "val_loss", "test_loss"})
# The held-out figure reported beside each selection metric; never a metric to select by.
TEST_OF: dict[str, str] = {
    "val_accuracy": "test_accuracy",
    "accuracy": "test_accuracy",
    "val_loss": "test_loss",
    "loss": "test_loss",
}

# ---------------------------------------------------------------- the job


class TargetSpec(ContractModel):
    """A value of a metric to reach: the comparison reports epochs and seconds to it."""

    metric: Metric = "val_accuracy"
    value: StrictFloat = Field(allow_inf_nan=False)


def _sweep(item: Any, *, max_length: int, description: str, default: list[int]) -> Any:
    """A value or a list of distinct values; stored as the list."""
    return Annotated[
        list[item],
        BeforeValidator(one_or_many),
        AfterValidator(distinct),
        OneOrMany(),
        Field(default=default, min_length=1, max_length=max_length, description=description),
    ]


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


class TrainSpec(JobSpec):
    """An optimizer comparison: every optimizer x batch size x seed is one run, trained on the
    dataset to the largest epoch budget. The model must fit the dataset (a 422 says why not),
    and the runs (optimizers x batch sizes x seeds) must be within the service's limit."""

    model_config = ConfigDict(json_schema_extra={"examples": [JOB_EXAMPLE]})

    kind: Literal["train"] = "train"
    dataset: DatasetSpec = Field(default_factory=lambda: NamedDatasetSpec(name="digits"))
    model: ModelSpec = Field(default_factory=lambda: MlpSpec(preset="mlp"))
    batch_size: _sweep(  # type: ignore[valid-type]
        integer(ge=1),
        max_length=32,
        description="A value or a list.",
        default=[32],
    )
    epochs: _sweep(  # type: ignore[valid-type]
        integer(ge=1),
        max_length=64,
        description="A budget or a list; one run trains to the largest and is read at each.",
        default=[10],
    )
    seeds: _sweep(  # type: ignore[valid-type]
        integer(ge=0, lt=2**31),
        max_length=64,
        description="A seed or a list; within a seed every arm starts from the same weights.",
        default=[0],
    )
    evaluate_initial: StrictBool = Field(
        default=True, description="Record epoch 0: the metrics of the initial weights."
    )
    target: TargetSpec | None = None

    @model_validator(mode="after")
    def _coherent(self) -> "TrainSpec":
        self.epochs.sort()
        try:
            check_model_fits(self.model, self.dataset.info().input_shape)
        except ValueError as error:
            raise ValueError(f"model: {error} (dataset {self.dataset.name!r})") from error
        return self

    @property
    def max_epochs(self) -> int:
        return int(max(self.epochs))

    def expand(self) -> list[RunPlan]:
        """Every optimizer x batch size x seed; epoch budgets share one run to the largest.

        Runs are ordered seed first, so the arms of one seed finish close together and a
        paired comparison is available as early as possible.
        """
        labels = self.arm_labels()
        several_sizes = len(self.batch_size) > 1
        runs: list[RunPlan] = []
        for seed in self.seeds:
            for batch_size in self.batch_size:
                for arm, optimizer in enumerate(self.optimizers):
                    label = f"{labels[arm]} bs={batch_size}" if several_sizes else labels[arm]
                    runs.append(
                        RunPlan(
                            index=len(runs),
                            arm=arm,
                            label=label,
                            optimizer=optimizer.config,
                            budget=self.max_epochs,
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

    def problems(self, settings: Settings) -> list[tuple[tuple[str | int, ...], str]]:
        found = super().problems(settings)
        for i, epochs in enumerate(self.epochs):
            if epochs > settings.max_epochs:
                found.append(
                    (
                        ("epochs", i),
                        f"{epochs} epochs exceed this service's limit of {settings.max_epochs}",
                    )
                )
        for i, size in enumerate(self.batch_size):
            if size > settings.max_batch_size:
                found.append(
                    (
                        ("batch_size", i),
                        f"{size} exceeds the largest batch size {settings.max_batch_size}",
                    )
                )
        return found

    @classmethod
    def settings_bounds(cls, settings: Settings) -> dict[str, int]:
        return {"epochs": settings.max_epochs, "batch_size": settings.max_batch_size}
