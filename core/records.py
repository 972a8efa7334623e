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

from pydantic import BaseModel, ConfigDict


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


class Sequenced:
    """A stored record (as JSON data) with its number in the job's sequence: the cursor.

    A writer that has the record's JSON text gives it as `text` (the stream's entry, never
    served and no part of what the record is); `data` is then parsed from it when first
    asked for, and a writer's bulk write that only streams its records never parses them.
    `source` is the record it was stored from, when the writer has it (its metrics read it).
    """

    __slots__ = ("_data", "seq", "source", "text")

    def __init__(
        self,
        *,
        seq: int,
        data: dict[str, Any] | None = None,
        text: str | None = None,
        source: Record | None = None,
    ) -> None:
        if data is None and text is None:
            raise TypeError("a Sequenced record needs its data or its text")
        self.seq = int(seq)
        self.text = text
        self.source = source
        self._data = data

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            assert self.text is not None
            self._data = json.loads(self.text)
        return self._data

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequenced):
            return NotImplemented
        return (self.seq, self.data) == (other.seq, other.data)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Sequenced(seq={self.seq}, data={self.data!r})"

    def of(self, record: type[R]) -> R:
        return record.model_validate(self.data)
