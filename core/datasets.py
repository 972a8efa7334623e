"""Datasets a job can train on, validated without loading them."""

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field, StrictFloat, model_validator

from core.contract import ContractModel, Integer, integer


@dataclass(frozen=True)
class DatasetInfo:
    input_shape: tuple[int, ...]
    num_classes: int
    train_examples: int
    # Examples of the dataset's official test set; None: it has none, test_split holds one out.
    test_examples: int | None = None


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


class _DatasetBase(ContractModel):
    validation_split: StrictFloat = Field(
        default=0.2,
        ge=0.0,
        le=0.9,
        description="Share of the training data (after the test set is held out) that each "
        "run seed draws as its validation data; selection (best epoch, ranking) uses it.",
    )
    test_split: StrictFloat = Field(
        default=0.2,
        ge=0.0,
        le=0.5,
        description="Share held out as the test set, by a fixed data seed, where the dataset "
        "has no official test set (mnist, fashion_mnist and cifar10 have one). The test set "
        "is evaluated only at the epoch budgets and at the end of a run, never used to "
        "select; 0 holds out nothing.",
    )
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
        if official is not None and "test_split" in self.model_fields_set:
            raise ValueError(
                f"{self.name} has an official test set of {official:,} examples, which every "
                "run is tested on; test_split applies only to datasets without one"
            )
        return self

    def info(self) -> DatasetInfo:
        return KERAS_DATASETS[self.name]


class SyntheticDatasetSpec(_DatasetBase):
    """Gaussian classes generated from a seed: any size, no download."""

    name: Literal["synthetic"]
    samples: Integer = Field(default=2000, ge=10, le=1_000_000)
    features: Integer = Field(default=20, ge=1, le=10_000)
    classes: Integer = Field(default=10, ge=2, le=1000)
    class_separation: StrictFloat = Field(default=1.0, gt=0.0, le=100.0)
    data_seed: Integer = Field(
        default=0, ge=0, lt=2**31, description="Fixes the data; run seeds fix the rest."
    )

    def info(self) -> DatasetInfo:
        return DatasetInfo((self.features,), self.classes, self.samples)


DatasetSpec = Annotated[NamedDatasetSpec | SyntheticDatasetSpec, Field(discriminator="name")]
