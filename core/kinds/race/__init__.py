"""The 2-D optimizer race: each optimizer steps (x, y) on a test function from one start."""

from core.kinds.base import Drawing, JobKind
from core.kinds.race.compare import ComparisonParams, PlotParams, RaceComparison, compare
from core.kinds.race.records import RaceRecord
from core.kinds.race.spec import RACE_EXAMPLE, RaceSpec


def _plot(drawing: Drawing) -> bytes:
    from core.kinds.race.plot import draw  # matplotlib loads on the first plot

    return draw(drawing)


KIND = JobKind(
    name="race",
    summary="The 2-D optimizer race: optimizers step (x, y) on a test function from one start.",
    spec=RaceSpec,
    record=RaceRecord,
    unit="step",
    metrics=("f", "x", "y", "learning_rate"),
    lower_is_better=frozenset({"f"}),
    x_axes=("step", "seconds"),
    comparison=RaceComparison,
    comparison_params=ComparisonParams,
    compare=compare,
    plot_params=PlotParams,
    plot=_plot,
    examples={"race": {"summary": "The 2-D optimizer race on Rosenbrock", "value": RACE_EXAMPLE}},
    picture=True,
)
