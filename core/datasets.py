"""Datasets a job can train on, validated without loading them."""

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field, StrictFloat

from core.contract import ContractModel, Integer, integer


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
DATASET_NOTES = {
    "digits": "8x8 handwritten digits bundled with scikit-learn: works offline.",
    "mnist": "28x28 handwritten digits; downloaded into the worker's cache on first use.",
    "fashion_mnist": "28x28 clothing images; downloaded into the worker's cache on first use.",
    "cifar10": "32x32 colour images of 10 classes; downloaded on first use.",
}


class _DatasetBase(ContractModel):
    validation_split: StrictFloat = Field(
        default=0.2, ge=0.0, le=0.9, description="Share of the training data held out."
    )
    limit: integer(ge=10, le=10_000_000) | None = Field(  # type: ignore[valid-type]
        default=None, description="Use at most this many examples (before the split)."
    )


class NamedDatasetSpec(_DatasetBase):
    """A dataset Keras knows (digits ships with scikit-learn and works offline)."""

    name: Literal["digits", "mnist", "fashion_mnist", "cifar10"]

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
