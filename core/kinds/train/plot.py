"""Learning curves of every run, coloured by arm. Matplotlib's object API with the Agg and
SVG canvases: no pyplot state, so requests can draw at the same time."""

import io
import uuid
from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from core.errors import NotFound
from core.kinds.base import Comparand, Drawing, colors
from core.kinds.train.records import TrainRecord
from core.kinds.train.results import ComparisonParams, PlotParams
from core.kinds.train.spec import LOWER_IS_BETTER, TrainSpec
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
    if params.view == "target":
        _target(drawing, axes)
    else:
        _curves(drawing, axes)
    figure.suptitle(drawing.title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=drawing.fmt, bbox_inches="tight")
    return buffer.getvalue()


TARGET_TIMES = {"epoch": "epochs", "examples": "epochs", "steps": "steps", "seconds": "seconds"}


def _target(drawing: Drawing, axes: Axes) -> None:
    """Per arm, the Kaplan-Meier fraction of runs that reached the target against time, with
    its 95% band; a run that stopped short of the target is censored (a tick on the curve)."""
    from core.kinds.train.compare import compare  # the comparison reads what the plot draws

    params, spec = drawing.params, drawing.spec
    assert isinstance(params, PlotParams) and isinstance(spec, TrainSpec)
    target = params.target
    if target is None and spec.target is not None and spec.target.metric == params.metric:
        target = spec.target.value
    if target is None:  # this job has none: as a job has no such arm
        raise NotFound(
            "view=target needs a target: pass target=VALUE (and metric=), or submit the job "
            "with one"
        )
    time = TARGET_TIMES[params.x]
    found = compare(
        Comparand(
            spec=spec,
            runs=drawing.runs,
            records=drawing.records,
            params=ComparisonParams(metric=params.metric, target=target, target_time=time),
        )
    )
    palette = colors([a.key for a in found.ranking])
    for arm in found.ranking:
        if arm.target is None:
            continue
        estimate = getattr(arm.target.estimate, time)
        if not estimate.curve:
            continue
        xs = [0.0] + [p.time for p in estimate.curve]
        ys = [0.0] + [p.reached for p in estimate.curve]
        color = palette[arm.key]
        axes.step(
            xs,
            ys,
            where="post",
            color=color,
            linewidth=1.8,
            label=f"{arm.key} ({arm.target.reached}/{arm.target.runs} reached)",
        )
        axes.fill_between(
            xs,
            [0.0] + [p.low for p in estimate.curve],
            [0.0] + [p.high for p in estimate.curve],
            step="post",
            color=color,
            alpha=0.15,
        )
    axes.set_xlabel(
        {"epochs": "epochs", "steps": "optimizer steps", "seconds": "training seconds"}[time]
    )
    axes.set_ylabel(f"fraction of runs with {params.metric} reaching {target:g}")
    axes.set_ylim(-0.02, 1.02)
    axes.grid(alpha=0.3)
    if found.ranking:
        axes.legend(title="arm (Kaplan-Meier, 95% band)", fontsize=8)


def _curves(drawing: Drawing, axes: Axes) -> None:
    params = drawing.params
    assert isinstance(params, PlotParams)
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
