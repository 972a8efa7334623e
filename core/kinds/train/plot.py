"""Learning curves of every run, coloured by arm. Matplotlib's object API with the Agg and
SVG canvases: no pyplot state, so requests can draw at the same time."""

import io
import uuid
from collections.abc import Sequence

from matplotlib.figure import Figure

from core.kinds.base import Drawing, colors
from core.kinds.train.records import TrainRecord
from core.kinds.train.results import PlotParams
from core.kinds.train.spec import LOWER_IS_BETTER
from core.runs import RunInfo

X_LABELS = {
    "epoch": "epoch",
    "steps": "optimizer steps",
    "examples": "examples seen",
    "seconds": "training seconds",
}


def _points(records: Sequence[TrainRecord], metric: str, x: str) -> list[tuple[float, float]]:
    points = []
    elapsed = 0.0
    for record in records:
        if record.epoch >= 1:
            elapsed += record.epoch_seconds
        value = record.metric(metric)
        if value is None:
            continue
        position = {
            "epoch": record.epoch,
            "steps": record.steps,
            "examples": record.examples_seen,
            "seconds": elapsed,
        }[x]
        points.append((float(position), value))
    return points


def draw(drawing: Drawing) -> bytes:
    params = drawing.params
    assert isinstance(params, PlotParams)
    figure = Figure(figsize=(8, 5.5), dpi=110)
    axes = figure.add_subplot()
    runs: Sequence[RunInfo] = drawing.runs
    palette = colors([r.label for r in runs])
    several_seeds = len({r.seed for r in runs}) > 1
    drawn: set[str] = set()
    by_run: dict[uuid.UUID, list[TrainRecord]] = dict(drawing.records)
    for run in runs:
        points = _points(by_run.get(run.id, []), params.metric, params.x)
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        label = None if run.label in drawn else run.label
        drawn.add(run.label)
        axes.plot(
            xs,
            ys,
            color=palette[run.label],
            label=label,
            alpha=0.6 if several_seeds else 1.0,
            linewidth=1.2 if several_seeds else 1.8,
            marker="" if len(xs) > 30 else "o",
            markersize=3,
        )
        if run.diverged_at is not None:
            axes.plot(xs[-1], ys[-1], marker="x", color=palette[run.label], markersize=9)
    axes.set_xlabel(X_LABELS[params.x])
    axes.set_ylabel(params.metric)
    if params.metric in LOWER_IS_BETTER and drawn:
        axes.set_yscale("log")
    axes.grid(alpha=0.3)
    if drawn:
        axes.legend(title="arm" + (" (one line per seed)" if several_seeds else ""), fontsize=8)
    else:
        axes.text(0.5, 0.5, "no records yet", ha="center", va="center", transform=axes.transAxes)
    figure.suptitle(drawing.title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=drawing.fmt, bbox_inches="tight")
    return buffer.getvalue()
