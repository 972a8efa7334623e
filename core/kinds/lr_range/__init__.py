"""The learning-rate range test: each optimizer's loss as its learning rate rises
exponentially, from the seed's shared initial weights, and the learning rates it suggests."""

from core.kinds.base import Drawing, JobKind
from core.kinds.lr_range.compare import ComparisonParams, LrRangeComparison, PlotParams, compare
from core.kinds.lr_range.records import LrRangeRecord
from core.kinds.lr_range.spec import RANGE_EXAMPLE, LrRangeSpec


def _plot(drawing: Drawing) -> bytes:
    from core.kinds.lr_range.plot import draw  # matplotlib loads on the first plot

    return draw(drawing)


KIND = JobKind(
    name="lr_range",
    summary="The learning-rate range test: the loss as each optimizer's learning rate rises "
    "exponentially, and the learning rates it suggests.",
    spec=LrRangeSpec,
    record=LrRangeRecord,
    unit="step",
    metrics=("smoothed_loss", "loss", "learning_rate"),
    lower_is_better=frozenset({"smoothed_loss", "loss"}),
    x_axes=("step", "learning_rate", "seconds"),
    comparison=LrRangeComparison,
    comparison_params=ComparisonParams,
    compare=compare,
    plot_params=PlotParams,
    plot=_plot,
    examples={
        "lr_range": {
            "summary": "The learning-rate range test on Fashion-MNIST",
            "value": RANGE_EXAMPLE,
        }
    },
    picture=True,
)
