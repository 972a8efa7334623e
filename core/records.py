"""Records: what a run reports as it goes (an epoch of training, a step of a race).

Each job kind defines its record's fields; every record has its run, its position in the run
(the epoch, the step) and a time. They are stored, streamed and paged in one shape: the
position keys exactly-once storage, and each record gets the job's next sequence number, the
cursor clients pass back.
"""

import json
import math
import uuid
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field


class Record(BaseModel):
    """The base of every kind's record."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="null")

    # The field that positions the record in its run: "epoch", "step".
    position_field: ClassVar[str] = "epoch"

    run_id: uuid.UUID
    time: datetime

    @property
    def position(self) -> int:
        value: int = getattr(self, self.position_field)
        return value

    def stored(self) -> dict[str, Any]:
        """The record as JSON data: what is stored, streamed and served (a value that is not
        finite becomes null, as JSON has no infinity)."""
        data: dict[str, Any] = json.loads(self.stored_json())
        return data

    def stored_json(self) -> str:
        """`stored()` as compact JSON text, serialized once for Postgres and the stream."""
        return self.model_dump_json()

    def metric(self, name: str) -> float | None:
        """The named value if it is a finite number, else None."""
        value: Any = getattr(self, name, None)
        return value if isinstance(value, float) and math.isfinite(value) else None


R = TypeVar("R", bound=Record)


class Sequenced(BaseModel):
    """A stored record (as JSON data) with its number in the job's sequence: the cursor."""

    model_config = ConfigDict(frozen=True)

    seq: int
    data: dict[str, Any]
    # `data` as JSON text when the writer has it already (the stream's entry), never served
    # and no part of what the record is
    text: str | None = Field(default=None, exclude=True, repr=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequenced):
            return NotImplemented
        return (self.seq, self.data) == (other.seq, other.data)

    def of(self, record: type[R]) -> R:
        return record.model_validate(self.data)
