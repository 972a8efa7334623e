"""One step of one optimizer in a race: where it is and how high."""

from typing import ClassVar

from pydantic import Field

from core.records import Record


class RaceRecord(Record):
    """The point after a step; step 0 is the start."""

    position_field: ClassVar[str] = "step"

    step: int = Field(ge=0)
    x: float | None
    y: float | None
    f: float | None = Field(description="The function's value at (x, y).")
    learning_rate: float | None
    seconds: float = Field(description="Seconds this step took.")
