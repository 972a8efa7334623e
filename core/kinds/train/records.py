"""One epoch of one training run, as the worker reports it and clients read it."""

from typing import ClassVar

from pydantic import Field

from core.records import Record


class TrainRecord(Record):
    """Metrics at the end of an epoch; epoch 0 is the initial weights, before training."""

    position_field: ClassVar[str] = "epoch"

    epoch: int = Field(ge=0)
    loss: float | None
    accuracy: float | None
    val_loss: float | None
    val_accuracy: float | None
    test_loss: float | None = Field(
        default=None, description="On the held-out test set: only at epoch budgets and the end."
    )
    test_accuracy: float | None = Field(
        default=None, description="On the held-out test set: only at epoch budgets and the end."
    )
    # Regression jobs record the mean absolute and root mean squared errors instead of
    # accuracy.
    mae: float | None = None
    rmse: float | None = None
    val_mae: float | None = None
    val_rmse: float | None = None
    test_mae: float | None = None
    test_rmse: float | None = None
    learning_rate: float | None = Field(description="The rate in force at the epoch's end.")
    epoch_seconds: float = Field(
        description="Training seconds of this epoch: its optimizer steps, without evaluation."
    )
    eval_seconds: float | None = Field(
        default=None,
        description="Seconds this epoch spent evaluating (validation, the test set at a budget; "
        "epoch 0: the initial weights): not counted in epoch_seconds.",
    )
    examples_seen: int = Field(description="Training examples seen so far.")
    steps: int = Field(description="Optimizer steps taken so far.")
