"""Pictures of a job: learning curves, or a race's contour with every trajectory.

Matplotlib's object API with the Agg and SVG canvases: no pyplot state, so requests can draw
at the same time.
"""

import io
import uuid
from collections.abc import Sequence
from typing import Literal

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from core.models import Run
from core.objectives import OBJECTIVES
from core.records import EpochRecord
from core.spec import LOWER_IS_BETTER, JobSpec, RaceSpec

XAxis = Literal["epoch", "steps", "examples", "seconds"]
X_LABELS = {
    "epoch": "epoch",
    "steps": "optimizer steps",
    "examples": "examples seen",
    "seconds": "training seconds",
}


def draw(
    spec: JobSpec | RaceSpec,
    title: str,
    runs: Sequence[Run],
    records: Sequence[EpochRecord],
    *,
    metric: str,
    x: XAxis,
    fmt: Literal["png", "svg"],
) -> bytes:
    by_run: dict[uuid.UUID, list[EpochRecord]] = {}
    for record in records:
        by_run.setdefault(record.run_id, []).append(record)
    for own in by_run.values():
        own.sort(key=lambda r: r.epoch)
    figure = Figure(figsize=(8, 5.5) if isinstance(spec, JobSpec) else (7, 6), dpi=110)
    if isinstance(spec, RaceSpec):
        _race(figure, spec, runs, by_run)
    else:
        _curves(figure, runs, by_run, metric=metric, x=x)
    figure.suptitle(title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, bbox_inches="tight")
    return buffer.getvalue()


def _colors(labels: Sequence[str]) -> dict[str, str]:
    palette = [f"C{i}" for i in range(10)]
    distinct = list(dict.fromkeys(labels))
    return {label: palette[i % len(palette)] for i, label in enumerate(distinct)}


def _curves(
    figure: Figure,
    runs: Sequence[Run],
    by_run: dict[uuid.UUID, list[EpochRecord]],
    *,
    metric: str,
    x: XAxis,
) -> None:
    axes = figure.add_subplot()
    colors = _colors([r.label for r in runs])
    several_seeds = len({r.seed for r in runs}) > 1
    drawn: set[str] = set()
    seconds: dict[uuid.UUID, float] = {}
    for run in runs:
        points = []
        elapsed = 0.0
        for record in by_run.get(run.id, []):
            if record.epoch >= 1:
                elapsed += record.epoch_seconds
            value = record.metric(metric)
            if value is None:
                continue
            position = {
                "epoch": record.epoch,
                "steps": record.steps if record.steps is not None else record.epoch,
                "examples": record.examples_seen,
                "seconds": elapsed,
            }[x]
            points.append((position, value))
        seconds[run.id] = elapsed
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        label = None if run.label in drawn else run.label
        drawn.add(run.label)
        axes.plot(
            xs,
            ys,
            color=colors[run.label],
            label=label,
            alpha=0.6 if several_seeds else 1.0,
            linewidth=1.2 if several_seeds else 1.8,
            marker="" if len(xs) > 30 else "o",
            markersize=3,
        )
        if run.diverged_epoch is not None:
            axes.plot(xs[-1], ys[-1], marker="x", color=colors[run.label], markersize=9)
    axes.set_xlabel(X_LABELS[x])
    axes.set_ylabel(metric)
    if metric in LOWER_IS_BETTER and any(by_run.values()):
        axes.set_yscale("log")
    axes.grid(alpha=0.3)
    if drawn:
        axes.legend(title="arm" + (" (one line per seed)" if several_seeds else ""), fontsize=8)
    else:
        axes.text(0.5, 0.5, "no records yet", ha="center", va="center", transform=axes.transAxes)


def _race(
    figure: Figure,
    spec: RaceSpec,
    runs: Sequence[Run],
    by_run: dict[uuid.UUID, list[EpochRecord]],
) -> None:
    objective = OBJECTIVES[spec.objective.function]
    axes = figure.add_subplot()
    (x0, x1), (y0, y1) = objective.window
    gx, gy = np.meshgrid(np.linspace(x0, x1, 300), np.linspace(y0, y1, 300))
    surface = objective.f(gx, gy)
    if objective.minimum_value is not None:
        shifted = surface - objective.minimum_value + 1e-3
        levels = np.logspace(np.log10(shifted.min()), np.log10(shifted.max()), 30)
        axes.contourf(gx, gy, shifted, levels=levels, norm=LogNorm(), cmap="Greys", alpha=0.35)
        axes.contour(gx, gy, shifted, levels=levels, norm=LogNorm(), colors="grey", linewidths=0.3)
    else:
        axes.contourf(gx, gy, surface, levels=30, cmap="Greys", alpha=0.35)
        axes.contour(gx, gy, surface, levels=30, colors="grey", linewidths=0.3)
    colors = _colors([r.label for r in runs])
    for run in runs:
        path = [(r.x, r.y) for r in by_run.get(run.id, []) if r.x is not None and r.y is not None]
        if not path:
            continue
        xs, ys = zip(*path, strict=True)
        suffix = f" (diverged at step {run.diverged_epoch})" if run.diverged_epoch else ""
        axes.plot(xs, ys, color=colors[run.label], linewidth=1.5, label=run.label + suffix)
        axes.plot(xs[-1], ys[-1], marker="o", color=colors[run.label], markersize=5)
    sx, sy = spec.objective.start_point
    axes.plot(sx, sy, marker="s", color="black", markersize=6, label="start")
    px, py = zip(*objective.points, strict=True)
    marker_label = "saddle point" if objective.goal == "escape" else "minimum"
    axes.plot(
        px,
        py,
        marker="*",
        linestyle="",
        color="gold",
        markeredgecolor="black",
        markersize=14,
        label=marker_label,
    )
    axes.set_xlim(x0, x1)
    axes.set_ylim(y0, y1)
    axes.set_xlabel("x")
    axes.set_ylabel("y")
    axes.set_title(f"{objective.name}: f = {objective.formula}", fontsize=9)
    axes.legend(fontsize=8, loc="best")
