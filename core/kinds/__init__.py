"""Every job kind, found in this folder: a new kind is a new subfolder whose package defines
KIND (a core.kinds.base.JobKind), plus its run function in worker/kinds/<kind>. The API's
routes, the stream, the cursor and the repositories serve every kind alike.

A `core/kinds/<kind>` folder in any directory on the Python path is found too (the package's
path is extended the way pkgutil extends namespace packages), so a kind can also ship outside
this tree.
"""

import copy
import dataclasses
import importlib
import pkgutil
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    create_model,
)
from pydantic.fields import FieldInfo

from core.errors import Invalid, NotFound
from core.kinds.base import Comparand, Drawing, JobKind, JobSpec

__path__ = pkgutil.extend_path(__path__, __name__)
DEFAULT_KIND = "train"


def _discover() -> dict[str, JobKind]:
    found: dict[str, JobKind] = {}
    for module in pkgutil.iter_modules(__path__):
        if module.ispkg:
            kind: JobKind = importlib.import_module(f"{__name__}.{module.name}").KIND
            found[kind.name] = kind
    return dict(sorted(found.items(), key=lambda item: item[0] != DEFAULT_KIND))


KINDS: dict[str, JobKind] = _discover()


def get_kind(name: str) -> JobKind:
    return KINDS[name]


def _kind_of(data: Any) -> str | None:
    """The kind a body names, or the one its fields imply (a race's objective), or train."""
    if isinstance(data, JobSpec):
        return data.kind
    if not isinstance(data, dict):
        return None
    named = data.get("kind")
    if named is not None:
        return named if isinstance(named, str) and named in KINDS else None
    implied = [k.name for k in KINDS.values() if k.spec.inferred_from in data]
    return implied[0] if implied else DEFAULT_KIND


if TYPE_CHECKING:
    AnyJobSpec = JobSpec
else:
    AnyJobSpec = Annotated[
        Union[tuple(Annotated[k.spec, Tag(k.name)] for k in KINDS.values())],  # noqa: UP007
        Discriminator(
            _kind_of,
            custom_error_type="job_kind",
            custom_error_message=f"kind must be one of {', '.join(map(repr, KINDS))} "
            f"(default {DEFAULT_KIND!r}; "
            + "; ".join(
                f"a body with {k.spec.inferred_from!r} is {k.name!r}"
                for k in KINDS.values()
                if k.spec.inferred_from
            )
            + ")",
        ),
    ]
_ANY_JOB: TypeAdapter[JobSpec] = TypeAdapter(AnyJobSpec)


def parse_job(data: Any) -> JobSpec:
    """A stored or submitted job of any kind."""
    return _ANY_JOB.validate_python(data)


# ---------------------------------------------------------------- one query model for all


def _merged_annotation(name: str, a: Any, b: Any) -> Any:
    if a == b:
        return a
    if get_origin(a) is Literal and get_origin(b) is Literal:
        return Literal[tuple(dict.fromkeys((*get_args(a), *get_args(b))))]
    raise TypeError(f"kinds disagree on the type of the parameter {name!r}: {a} vs {b}")


def merged_params(name: str, models: dict[str, type[BaseModel]]) -> type[BaseModel]:
    """One model with every kind's parameters; each says which kinds read it."""
    fields: dict[str, tuple[Any, FieldInfo]] = {}
    readers: dict[str, list[str]] = {}
    for kind, model in models.items():
        for field, info in model.model_fields.items():
            readers.setdefault(field, []).append(kind)
            if field in fields:
                annotation = _merged_annotation(field, fields[field][0], info.annotation)
                merged = copy.copy(fields[field][1])
                if merged.default != info.default:
                    merged.default = None
                fields[field] = (
                    annotation | None if merged.default is None else annotation,
                    merged,
                )
            else:
                fields[field] = (info.annotation, copy.copy(info))
    for field, (_, info) in fields.items():
        if len(readers[field]) < len(models):
            info.description = f"{info.description or ''} ({', '.join(readers[field])} jobs)"
    one: type[BaseModel] = create_model(name, **fields)  # type: ignore[call-overload]
    return one


ComparisonParams = merged_params(
    "ComparisonParams", {k.name: k.comparison_params for k in KINDS.values()}
)
PlotParams = merged_params("PlotParams", {k.name: k.plot_params for k in KINDS.values()})


def params_for(kind: str, model: type[BaseModel], merged: BaseModel) -> BaseModel:
    """The kind's own parameters from the merged ones: only what was given, its defaults else.
    A value only another kind takes (a tuned comparison's view of a training job) is a 404:
    this job has no such thing, as it may have no such arm."""
    given = merged.model_dump(include=set(model.model_fields), exclude_unset=True)
    try:
        return model.model_validate(given)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(map(str, first["loc"]))
        raise NotFound(
            f"a {kind} job has no {field} {first.get('input')!r}: {first['msg']}"
        ) from error


def compare(comparand: Comparand) -> BaseModel:
    """The comparison of one job, in its kind's terms."""
    kind = get_kind(comparand.spec.kind)
    params = params_for(kind.name, kind.comparison_params, comparand.params)
    return kind.compare(dataclasses.replace(comparand, params=params))


def compare_across(comparands: list[Comparand]) -> BaseModel:
    """Runs of several jobs of one kind, compared as one job's."""
    kinds = {c.spec.kind for c in comparands}
    if len(kinds) > 1:
        raise Invalid(f"runs of different kinds of job ({', '.join(sorted(kinds))}) do not compare")
    kind = get_kind(kinds.pop())
    if kind.compare_across is None:
        raise Invalid(f"{kind.name} jobs are compared within their job, not across jobs")
    own = [
        dataclasses.replace(c, params=params_for(kind.name, kind.comparison_params, c.params))
        for c in comparands
    ]
    return kind.compare_across(own)


def plot(drawing: Drawing) -> bytes:
    kind = get_kind(drawing.spec.kind)
    params = params_for(kind.name, kind.plot_params, drawing.params)
    return kind.plot(dataclasses.replace(drawing, params=params))


if TYPE_CHECKING:
    Comparison = BaseModel
else:
    Comparison = Annotated[
        Union[tuple(k.comparison for k in KINDS.values())],  # noqa: UP007
        Field(discriminator="kind"),
    ]


def _record_item(kind: JobKind) -> type[BaseModel]:
    item: type[BaseModel] = create_model(
        f"{kind.name.title()}RecordItem",
        __base__=kind.record,
        __doc__=f"A record of a {kind.name} job with its cursor.",
        cursor=(str, Field(description="Pass the last one back as ?after= or Last-Event-ID.")),
    )
    return item


RECORD_ITEMS: dict[str, type[BaseModel]] = {k.name: _record_item(k) for k in KINDS.values()}
if TYPE_CHECKING:
    RecordItem = BaseModel
else:
    RecordItem = Union[tuple(RECORD_ITEMS.values())]  # noqa: UP007
