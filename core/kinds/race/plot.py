"""A race's picture: the function's contour with every optimizer's path."""

import io

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from core.kinds.base import Drawing, colors
from core.kinds.race.objectives import OBJECTIVES
from core.kinds.race.spec import RaceSpec


def draw(drawing: Drawing) -> bytes:
    spec = drawing.spec
    assert isinstance(spec, RaceSpec)
    objective = OBJECTIVES[spec.objective.function]
    figure = Figure(figsize=(7, 6), dpi=110)
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
    palette = colors([r.label for r in drawing.runs])
    for run in drawing.runs:
        path = [
            (r.x, r.y)
            for r in drawing.records.get(run.id, [])
            if r.x is not None and r.y is not None
        ]
        if not path:
            continue
        xs, ys = zip(*path, strict=True)
        suffix = f" (diverged at step {run.diverged_at})" if run.diverged_at else ""
        axes.plot(xs, ys, color=palette[run.label], linewidth=1.5, label=run.label + suffix)
        axes.plot(xs[-1], ys[-1], marker="o", color=palette[run.label], markersize=5)
    sx, sy = spec.objective.start_point
    axes.plot(sx, sy, marker="s", color="black", markersize=6, label="start")
    px, py = zip(*objective.points, strict=True)
    axes.plot(
        px,
        py,
        marker="*",
        linestyle="",
        color="gold",
        markeredgecolor="black",
        markersize=14,
        label="saddle point" if objective.goal == "escape" else "minimum",
    )
    axes.set_xlim(x0, x1)
    axes.set_ylim(y0, y1)
    axes.set_xlabel("x")
    axes.set_ylabel("y")
    axes.set_title(f"{objective.name}: f = {objective.formula}", fontsize=9)
    axes.legend(fontsize=8, loc="best")
    figure.suptitle(drawing.title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=drawing.fmt, bbox_inches="tight")
    return buffer.getvalue()
