"""A tuned comparison drawn: the budget curves, the sensitivity of each optimizer to each
searched argument, or the final seeds' learning curves."""

import dataclasses
import io

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter

from core.kinds.base import Comparand, Drawing, colors
from core.kinds.train.results import PlotParams
from core.kinds.tune.compare import TuneComparison, TuneComparisonParams, compare
from core.kinds.tune.search import LogUniform
from core.kinds.tune.spec import TuneSpec


def draw(drawing: Drawing) -> bytes:
    spec, params = drawing.spec, drawing.params
    assert isinstance(spec, TuneSpec)
    if params.view == "curves":
        from core.kinds.train.plot import draw as curves

        final = [r for r in drawing.runs if r.phase == 2] or list(drawing.runs)
        return curves(
            dataclasses.replace(
                drawing, runs=final, params=PlotParams(metric=params.metric, x="epoch")
            )
        )
    found = compare(
        Comparand(
            spec=spec, runs=drawing.runs, records=drawing.records, params=TuneComparisonParams()
        )
    )
    figure = _budget(found) if params.view == "budget" else _sensitivity(found, spec)
    figure.suptitle(drawing.title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=drawing.fmt, bbox_inches="tight")
    return buffer.getvalue()


def _budget(found: TuneComparison) -> Figure:
    figure = Figure(figsize=(8, 5.5), dpi=110)
    axes = figure.add_subplot()
    palette = colors([o.label for o in found.optimizers])
    for o in found.optimizers:
        points = [(p.trials, p.expected) for p in o.budget_curve if p.expected is not None]
        if not points:
            continue
        axes.plot(
            [k for k, _ in points],
            [e for _, e in points],
            color=palette[o.label],
            label=o.label,
            marker="o",
            markersize=3,
        )
        banded = [
            (p.trials, p.ci_low, p.ci_high)
            for p in o.budget_curve
            if p.ci_low is not None and p.ci_high is not None
        ]
        if banded:
            axes.fill_between(
                [k for k, _, _ in banded],
                [lo for _, lo, _ in banded],
                [hi for _, _, hi in banded],
                color=palette[o.label],
                alpha=0.18,
                linewidth=0,
            )
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("trials of the search")
    axes.set_ylabel(f"expected best {found.metric} (95% bootstrap band)")
    axes.grid(alpha=0.3)
    if any(o.budget_curve and o.budget_curve[0].expected is not None for o in found.optimizers):
        axes.legend(title="optimizer", fontsize=8)
    else:
        axes.text(
            0.5, 0.5, "no trial has a value yet", ha="center", va="center", transform=axes.transAxes
        )
    return figure


def _sensitivity(found: TuneComparison, spec: TuneSpec) -> Figure:
    panels = [
        (o, key)
        for o, opt in zip(found.optimizers, spec.optimizers, strict=True)
        for key in sorted(opt.search)
    ]
    figure = Figure(
        figsize=(4.2 * max(1, min(3, len(panels))), 3.6 * max(1, -(-len(panels) // 3))),
        dpi=100,
        layout="constrained",
    )
    if not panels:
        axes = figure.add_subplot()
        axes.text(
            0.5, 0.5, "nothing was searched", ha="center", va="center", transform=axes.transAxes
        )
        return figure
    palette = colors([o.label for o in found.optimizers])
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    for i, (o, key) in enumerate(panels, start=1):
        axes = figure.add_subplot(rows, columns, i)
        dist = spec.optimizers[o.arm].search[key]
        for trial in o.trials:
            if trial.value is None or key not in trial.values:
                continue
            x = float(trial.values[key])
            complete = trial.status == "succeeded"
            axes.plot(
                [x],
                [trial.value],
                marker="o",
                markersize=6,
                color=palette[o.label],
                markerfacecolor=palette[o.label] if complete else "none",
            )
        if o.chosen and key in o.chosen.values and o.chosen.value is not None:
            axes.plot(
                [float(o.chosen.values[key])],
                [o.chosen.value],
                marker="*",
                markersize=14,
                color="black",
            )
        if isinstance(dist, LogUniform):
            axes.set_xscale("log")
            axes.xaxis.set_minor_formatter(NullFormatter())
        axes.set_title(f"{o.label}: {key}", fontsize=9)
        axes.set_ylabel(found.metric, fontsize=8)
        axes.grid(alpha=0.3)
    figure.supxlabel(
        "filled: trained to the budget; hollow: pruned or stopped; star: chosen", fontsize=8
    )
    return figure
