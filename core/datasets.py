"""Datasets a job can train on, validated without loading them."""

import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, PrivateAttr, StrictFloat, Tag, model_validator

from core.contract import ContractModel, Integer, integer

Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class DatasetInfo:
    input_shape: tuple[int, ...]
    num_classes: int
    train_examples: int
    # Examples of the dataset's official test set; None: it has none, test_split holds one out.
    test_examples: int | None = None
    task: Task = "classification"


KERAS_DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo((8, 8, 1), 10, 1797),
    "mnist": DatasetInfo((28, 28, 1), 10, 60000, 10000),
    "fashion_mnist": DatasetInfo((28, 28, 1), 10, 60000, 10000),
    "cifar10": DatasetInfo((32, 32, 3), 10, 50000, 10000),
}
DATASET_NOTES = {
    "digits": "8x8 handwritten digits bundled with scikit-learn: works offline; "
    "test_split holds out the test set.",
    "mnist": "28x28 handwritten digits with their official 10,000-image test set; downloaded "
    "into the worker's cache on first use.",
    "fashion_mnist": "28x28 clothing images with their official 10,000-image test set; read "
    "offline from Debian's dataset-fashion-mnist package where installed, else downloaded.",
    "cifar10": "32x32 colour images of 10 classes with their official test set; downloaded on "
    "first use.",
}
# The data seed of the test hold-out: fixed, so every run seed and every arm meets the same
# test set, and no run seed ever trains on it.
TEST_HOLDOUT_SEED = 20261122
DEFAULT_TEST_SPLIT = 0.2


class _DatasetBase(ContractModel):
    validation_split: StrictFloat = Field(
        default=0.2,
        ge=0.0,
        le=0.9,
        description="Share of the training data (after the test set is held out) that each "
        "run seed draws as its validation data; selection (best epoch, ranking) uses it.",
    )
    test_split: StrictFloat | None = Field(
        default=None,
        ge=0.0,
        le=0.5,
        description="Share held out as the test set, by a fixed data seed, where the dataset "
        f"has no test set of its own (default {DEFAULT_TEST_SPLIT}; mnist, fashion_mnist and "
        "cifar10 have one, and so may an upload). The test set is evaluated only at the epoch "
        "budgets and at the end of a run, never used to select; 0 holds out nothing.",
    )

    @property
    def held_out(self) -> float:
        """The share test_split holds out where the dataset has no test set of its own."""
        return DEFAULT_TEST_SPLIT if self.test_split is None else self.test_split

    limit: integer(ge=10, le=10_000_000) | None = Field(  # type: ignore[valid-type]
        default=None,
        description="Use at most this many training examples (a fixed subset, before the "
        "splits); an official test set is used whole.",
    )


class NamedDatasetSpec(_DatasetBase):
    """A dataset Keras knows (digits ships with scikit-learn and works offline)."""

    name: Literal["digits", "mnist", "fashion_mnist", "cifar10"]

    @model_validator(mode="after")
    def _official_test_set(self) -> "NamedDatasetSpec":
        official = self.info().test_examples
        if official is not None and self.test_split is not None:
            raise ValueError(
                f"{self.name} has an official test set of {official:,} examples, which every "
                "run is tested on; test_split applies only to datasets without one"
            )
        return self

    def info(self) -> DatasetInfo:
        return KERAS_DATASETS[self.name]


class SyntheticDatasetSpec(_DatasetBase):
    """Generated from a seed, any size, no download: Gaussian classes, or for the regression
    task a noisy linear function of Gaussian features."""

    name: Literal["synthetic"]
    task: Task = "classification"
    samples: Integer = Field(default=2000, ge=10, le=1_000_000)
    features: Integer = Field(default=20, ge=1, le=10_000)
    classes: Integer = Field(default=10, ge=2, le=1000, description="Classification only.")
    class_separation: StrictFloat = Field(default=1.0, gt=0.0, le=100.0)
    data_seed: Integer = Field(
        default=0, ge=0, lt=2**31, description="Fixes the data; run seeds fix the rest."
    )

    def info(self) -> DatasetInfo:
        classes = self.classes if self.task == "classification" else 0
        return DatasetInfo((self.features,), classes, self.samples, task=self.task)


class UploadedDatasetSpec(_DatasetBase):
    """A dataset you uploaded (POST /datasets), by its id. Its own x_val/y_val, if it has
    them, are the validation data of every seed; its own x_test/y_test, the test set."""

    id: uuid.UUID = Field(strict=False, description="The id POST /datasets gave.")

    def info(self) -> DatasetInfo:
        """Known once the service has looked the upload up (see `resolve`)."""
        if self._info is None:
            raise ValueError(f"dataset {self.id} has not been looked up")
        return self._info

    def resolve(self, meta: dict[str, Any]) -> None:
        self._info = DatasetInfo(
            input_shape=tuple(meta["input_shape"]),
            num_classes=int(meta["classes"] or 0),
            train_examples=int(meta["splits"]["train"]),
            test_examples=int(meta["splits"]["test"]) or None,
            task=meta["task"],
        )

    _info: DatasetInfo | None = PrivateAttr(default=None)


def _dataset_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        if "id" in value:
            return "upload"
        return "synthetic" if value.get("name") == "synthetic" else "named"
    if isinstance(value, UploadedDatasetSpec):
        return "upload"
    if isinstance(value, SyntheticDatasetSpec):
        return "synthetic"
    return "named" if isinstance(value, NamedDatasetSpec) else None


DatasetSpec = Annotated[
    Annotated[NamedDatasetSpec, Tag("named")]
    | Annotated[SyntheticDatasetSpec, Tag("synthetic")]
    | Annotated[UploadedDatasetSpec, Tag("upload")],
    Discriminator(
        _dataset_kind,
        custom_error_type="dataset",
        custom_error_message="a dataset is {'name': ...} (digits, mnist, fashion_mnist, "
        "cifar10, synthetic) or {'id': ...} of one you uploaded",
    ),
]
