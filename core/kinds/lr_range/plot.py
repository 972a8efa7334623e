"""The range test drawn: smoothed loss against learning rate on a log axis, one curve per run,
the suggestions marked."""

import io
import uuid
from collections.abc import Sequence

from matplotlib.figure import Figure

from core.kinds.base import Drawing, colors
from core.kinds.lr_range.compare import read_run
from core.kinds.lr_range.records import LrRangeRecord


def draw(drawing: Drawing) -> bytes:
    figure = Figure(figsize=(8, 5.5), dpi=110)
    axes = figure.add_subplot()
    palette = colors([r.label for r in drawing.runs])
    by_run: dict[uuid.UUID, Sequence[LrRangeRecord]] = dict(drawing.records)
    drawn: set[str] = set()
    lows: list[float] = []
    highs: list[float] = []
    for run in drawing.runs:
        records = sorted(by_run.get(run.id, []), key=lambda r: r.step)
        points = [
            (r.learning_rate, r.smoothed_loss) for r in records if r.smoothed_loss is not None
        ]
        if not points:
            continue
        color = palette[run.label]
        xs, ys = zip(*points, strict=True)
        label = None if run.label in drawn else run.label
        drawn.add(run.label)
        axes.plot(xs, ys, color=color, label=label, linewidth=1.6)
        lows.append(min(ys))
        highs.append(ys[0])
        found = read_run(run, records).suggestion
        at = dict(points)
        for lr, marker in ((found.steepest, "o"), (found.minimum_div_10, "^")):
            if lr is not None:
                y = at.get(lr, min(points, key=lambda p: abs(p[0] - lr))[1])
                axes.plot(lr, y, marker=marker, color=color, markersize=8, markeredgecolor="k")
        if found.blew_up_at is not None:
            axes.axvline(found.blew_up_at, color=color, linestyle=":", alpha=0.6)
    axes.set_xscale("log")
    axes.set_xlabel("learning rate")
    axes.set_ylabel("smoothed training loss")
    if drawn:
        top = max(highs) * 1.5
        bottom = min(lows)
        axes.set_ylim(bottom - 0.05 * (top - bottom), top)
        axes.plot([], [], "ko", label="steepest descent")
        axes.plot([], [], "k^", label="minimum / 10")
        axes.plot([], [], "k:", label="blew up")
        axes.legend(fontsize=8)
    else:
        axes.text(0.5, 0.5, "no records yet", ha="center", va="center", transform=axes.transAxes)
    axes.grid(alpha=0.3, which="both")
    figure.suptitle(drawing.title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=drawing.fmt, bbox_inches="tight")
    return buffer.getvalue()
