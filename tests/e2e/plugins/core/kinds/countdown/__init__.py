"""A third kind of job, for the test that kinds are plug-ins: each optimizer counts down from
its learning rate times `steps` to zero, one record a step."""

import io
from typing import ClassVar, Literal

from matplotlib.figure import Figure
from pydantic import BaseModel, Field

from core.contract import Integer
from core.kinds.base import Column, Comparand, Drawing, JobKind, JobSpec, Table
from core.records import Record
from core.runs import RunPlan


class CountdownSpec(JobSpec):
    """Count down from each optimizer's learning rate times `steps`."""

    kind: Literal["countdown"] = "countdown"
    steps: Integer = Field(default=5, ge=1, le=50)

    def expand(self) -> list[RunPlan]:
        labels = self.arm_labels()
        return [
            RunPlan(index=i, arm=i, label=labels[i], optimizer=o.config, budget=self.steps)
            for i, o in enumerate(self.optimizers)
        ]


class CountdownRecord(Record):
    position_field: ClassVar[str] = "step"

    step: int
    value: float


class CountdownParams(BaseModel):
    pass


class CountdownComparison(BaseModel):
    kind: Literal["countdown"] = "countdown"
    finals: dict[str, float]
    table: Table


def compare(comparand: Comparand) -> CountdownComparison:
    finals = {
        run.label: comparand.records[run.id][-1].value
        for run in comparand.runs
        if comparand.records.get(run.id)
    }
    rows = [{"arm": label, "final": value} for label, value in sorted(finals.items())]
    table = Table(
        title="countdown",
        columns=[Column(key="arm", title="arm"), Column(key="final", title="final")],
        rows=rows,
        note="every run ends at zero",
    )
    return CountdownComparison(finals=finals, table=table)


def plot(drawing: Drawing) -> bytes:
    figure = Figure(figsize=(4, 3))
    axes = figure.add_subplot()
    for run in drawing.runs:
        points = drawing.records.get(run.id, [])
        axes.plot([r.step for r in points], [r.value for r in points], label=run.label)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=drawing.fmt)
    return buffer.getvalue()


KIND = JobKind(
    name="countdown",
    summary="Counts down from each learning rate: a kind that ships outside the tree.",
    spec=CountdownSpec,
    record=CountdownRecord,
    unit="step",
    metrics=("value",),
    lower_is_better=frozenset(),
    x_axes=("step",),
    comparison=CountdownComparison,
    comparison_params=CountdownParams,
    compare=compare,
    plot_params=CountdownParams,
    plot=plot,
)
