"""The base of everything a client sends, and its integers."""

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict


class ContractModel(BaseModel):
    """What clients send: unknown fields are refused and no type is coerced, so the API accepts
    exactly what the JSON schema describes."""

    model_config = ConfigDict(extra="forbid", strict=True)


def _integral(value: Any) -> Any:
    """JSON's integers: 5 and 5.0 are the same number (JSON Schema's "integer" accepts both);
    5.5, "5" and true are not integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Integer = Annotated[int, Strict(), BeforeValidator(_integral)]


# Text that is stored: any characters but NUL, which Postgres text and JSONB cannot hold.
TEXT_PATTERN = r"^[^\x00]*$"


def text(**bounds: Any) -> Any:
    """Stored free text (a name, a label) within length bounds; NUL is refused, in the schema."""
    return Annotated[str, Field(pattern=TEXT_PATTERN, **bounds)]


def integer(**bounds: Any) -> Any:
    """An integer within bounds (ge, gt, le, lt). The bounds go inside the validator, so the
    schema shows them as JSON Schema's minimum and maximum."""
    return Annotated[int, Strict(), Field(**bounds), BeforeValidator(_integral)]
