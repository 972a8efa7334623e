"""The training job's contract: a dataset, a model and a sweep over optimizers, batch sizes,
epoch budgets and seeds. Validated without Keras."""

from collections.abc import Mapping
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

from core.architectures import MlpSpec, ModelSpec, UploadedModelSpec, check_model_fits
from core.contract import ContractModel, integer
from core.datasets import DatasetInfo, DatasetSpec, NamedDatasetSpec, UploadedDatasetSpec
from core.kinds.base import JobSpec, OneOrMany, Problem, distinct, one_or_many
from core.runs import RunPlan
from core.settings import Settings
from core.uploads import fits

Metric = Literal[
    "val_accuracy", "val_loss", "accuracy", "loss", "val_mae", "val_rmse", "mae", "rmse"
]
LOWER_IS_BETTER = frozenset(
    {"loss", "val_loss", "test_loss", "mae", "val_mae", "test_mae", "rmse", "val_rmse", "test_rmse"}
)
# The held-out figure reported beside each selection metric; never a metric to select by.
TEST_OF: dict[str, str] = {
    name: "test_" + name.removeprefix("val_")
    for name in (
        "val_accuracy",
        "accuracy",
        "val_loss",
        "loss",
        "val_mae",
        "mae",
        "val_rmse",
        "rmse",
    )
}
Loss = Literal[
    "sparse_categorical_crossentropy",
    "binary_crossentropy",
    "mean_squared_error",
    "mean_absolute_error",
    "huber",
]
CROSS_ENTROPY = ("sparse_categorical_crossentropy", "binary_crossentropy")
# What a job of each task records, the headline first (charts, CLI, comparisons).
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("val_accuracy", "val_loss", "accuracy", "loss", "learning_rate"),
    "regression": ("val_loss", "val_mae", "val_rmse", "loss", "mae", "rmse", "learning_rate"),
}

# ---------------------------------------------------------------- the job


class TargetSpec(ContractModel):
    """A value of a metric to reach: the comparison reports epochs and seconds to it. The
    metric must be one the job's task records (no accuracy in a regression)."""

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


def batch_size_problems(sizes: list[int], settings: Settings) -> list[Problem]:
    """Batch sizes beyond this service's limit, where the body lists them."""
    return [
        (("batch_size", i), f"{size} exceeds the largest batch size {settings.max_batch_size}")
        for i, size in enumerate(sizes)
        if size > settings.max_batch_size
    ]


class DataModelSpec(JobSpec):
    """What every kind that trains a Keras model on a dataset has: the dataset, the model, the
    task and the loss. The model must fit the dataset (a 422 says why not)."""

    dataset: DatasetSpec = Field(default_factory=lambda: NamedDatasetSpec(name="digits"))
    model: ModelSpec = Field(default_factory=lambda: MlpSpec(preset="mlp"))
    task: Literal["classification", "regression"] | None = Field(
        default=None,
        description="Written out from the dataset: classification (class labels) or "
        "regression (numeric targets; records mae and rmse instead of accuracy).",
    )
    loss: Loss | None = Field(
        default=None,
        description="Default: sparse_categorical_crossentropy for classification, "
        "mean_squared_error for regression. binary_crossentropy needs two classes (the model "
        "gives one logit); mean_squared_error, mean_absolute_error and huber on a "
        "classification compare softmax outputs with one-hot labels (the Keras course "
        "exercise). Cross-entropy losses need class labels.",
    )

    @model_validator(mode="after")
    def _coherent(self) -> "DataModelSpec":
        if isinstance(self.dataset, UploadedDatasetSpec) or isinstance(
            self.model, UploadedModelSpec
        ):
            return self  # checked at submit, against the uploads' stored facts
        try:
            check_model_fits(self.model, self.dataset.info().input_shape)
        except ValueError as error:
            raise ValueError(f"model: {error} (dataset {self.dataset.name!r})") from error
        problem = self._settle_task(self.dataset.info())
        if problem:
            raise ValueError(problem[1])
        return self

    def _settle_task(self, info: DatasetInfo) -> Problem | None:
        """Write out the task and the loss; why they do not fit the dataset, if they do not."""
        if self.task is not None and self.task != info.task:
            return (("task",), f"task is {self.task} but the dataset's is {info.task}")
        self.task = info.task
        if self.loss is None:
            self.loss = (
                "sparse_categorical_crossentropy"
                if info.task == "classification"
                else "mean_squared_error"
            )
        if info.task == "regression" and self.loss in CROSS_ENTROPY:
            return (("loss",), f"{self.loss} needs class labels; the dataset is a regression")
        target: TargetSpec | None = getattr(self, "target", None)
        if target is not None and target.metric not in TASK_METRICS[info.task]:
            return (
                ("target", "metric"),
                f"a {info.task} records {', '.join(TASK_METRICS[info.task][:-1])}, not "
                f"{target.metric}",
            )
        if self.loss == "binary_crossentropy" and info.num_classes != 2:
            return (
                ("loss",),
                f"binary_crossentropy needs two classes; the dataset has {info.num_classes}",
            )
        return None

    @property
    def outputs(self) -> int:
        """The model's outputs: one per class, or one (binary cross-entropy, regression)."""
        if self.task == "regression" or self.loss == "binary_crossentropy":
            return 1
        return self.dataset.info().num_classes

    def default_metric(self) -> str:
        """What a comparison ranks by unless asked: validation accuracy, or loss."""
        metrics = TASK_METRICS[self.task or "classification"]
        has_val = getattr(self.dataset, "validation_split", 0) > 0 or isinstance(
            self.dataset, UploadedDatasetSpec
        )
        return metrics[0] if has_val else metrics[0].removeprefix("val_")

    def uploads(self) -> list[tuple[tuple[str | int, ...], str, Any]]:
        found: list[tuple[tuple[str | int, ...], str, Any]] = []
        if isinstance(self.dataset, UploadedDatasetSpec):
            found.append((("dataset", "id"), "dataset", self.dataset.id))
        if isinstance(self.model, UploadedModelSpec):
            found.append((("model", "id"), "model", self.model.id))
        return found

    def check_uploads(self, meta: Mapping[Any, dict[str, Any]]) -> list[Problem]:
        """The model must take the dataset's examples and give the outputs the task needs."""
        if isinstance(self.dataset, UploadedDatasetSpec):
            data = meta[self.dataset.id]
            if data["splits"]["test"] and self.dataset.test_split is not None:
                return [
                    (
                        ("dataset", "test_split"),
                        f"the dataset has its own test set of {data['splits']['test']} examples; "
                        "test_split applies only to datasets without one",
                    )
                ]
            self.dataset.resolve(data)
        info = self.dataset.info()
        problem = self._settle_task(info)
        if problem:
            return [problem]
        if isinstance(self.model, UploadedModelSpec):
            model = meta[self.model.id]
            why = fits(
                model["input_shape"],
                model["outputs"],
                list(info.input_shape),
                self.outputs,
                self.task or "classification",
            )
            return [(("model", "id"), why)] if why else []
        try:
            check_model_fits(self.model, info.input_shape)
        except ValueError as error:
            return [
                (
                    ("model",),
                    f"{error} (the uploaded dataset's examples have shape "
                    f"{list(info.input_shape)})",
                )
            ]
        return []


class TrainSpec(DataModelSpec):
    """An optimizer comparison: every optimizer x batch size x seed is one run, trained on the
    dataset to the largest epoch budget. The model must fit the dataset (a 422 says why not),
    and the runs (optimizers x batch sizes x seeds) must be within the service's limit."""

    model_config = ConfigDict(json_schema_extra={"examples": [JOB_EXAMPLE]})

    kind: Literal["train"] = "train"
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
    fuse: StrictBool = Field(
        default=True,
        description="Let a worker train the runs that differ only in their optimizer (same "
        "seed, batch size and epochs) together in one compiled step, each computing what it "
        "would alone (within 1e-6 relative; bitwise on CPU); a run's summary says how many "
        "arms it trained with (`fused_with`). Arms trained together share their epochs' "
        "seconds. false: every run trains alone.",
    )
    target: TargetSpec | None = None

    @model_validator(mode="after")
    def _sorted(self) -> "TrainSpec":
        self.epochs.sort()
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
        found = super().problems(settings) + batch_size_problems(self.batch_size, settings)
        for i, epochs in enumerate(self.epochs):
            if epochs > settings.max_epochs:
                found.append(
                    (
                        ("epochs", i),
                        f"{epochs} epochs exceed this service's limit of {settings.max_epochs}",
                    )
                )
        return found

    @classmethod
    def settings_bounds(cls, settings: Settings) -> dict[str, int]:
        return {"epochs": settings.max_epochs, "batch_size": settings.max_batch_size}
