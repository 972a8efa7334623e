"""One step of a learning-rate range test."""

from typing import ClassVar

from pydantic import Field

from core.records import Record


class LrRangeRecord(Record):
    """The mini-batch loss at one step, taken at that step's learning rate."""

    position_field: ClassVar[str] = "step"

    step: int = Field(ge=1)
    learning_rate: float
    loss: float | None = Field(description="The training batch's loss; null when not finite.")
    smoothed_loss: float | None = Field(
        description="Exponential moving average of the loss, bias-corrected (as fastai)."
    )
    seconds: float = Field(description="Seconds this step took.")
