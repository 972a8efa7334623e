"""The optimizer comparison: optimizers x batch sizes x seeds trained on one dataset and model,
read at epoch budgets, aggregated over seeds and tested pairwise."""

from typing import Any

from core.kinds.base import Drawing, JobKind
from core.kinds.train.compare import compare, compare_across
from core.kinds.train.records import TrainRecord
from core.kinds.train.results import ComparisonParams, PlotParams, TrainComparison
from core.kinds.train.spec import JOB_EXAMPLE, LOWER_IS_BETTER, TASK_METRICS, TrainSpec


def _plot(drawing: Drawing) -> bytes:
    from core.kinds.train.plot import draw  # matplotlib loads on the first plot

    return draw(drawing)


EXAMPLES: dict[str, dict[str, Any]] = {
    "sgd-adam-rmsprop": {
        "summary": "Homework 1: SGD, Adam and RMSprop on one model",
        "value": {
            "name": "sgd-vs-adam-vs-rmsprop",
            "dataset": {"name": "digits"},
            "model": {"preset": "mlp", "hidden_units": [128], "dropout": 0.2},
            "optimizers": ["sgd", "adam", "rmsprop"],
            "batch_size": 32,
            "epochs": 5,
        },
    },
    "adam-sweep": {
        "summary": "Homework 2: Adam across batch sizes and epoch budgets",
        "value": {
            "dataset": {"name": "digits"},
            "optimizers": [{"name": "adam"}],
            "batch_size": [16, 64, 256],
            "epochs": [5, 10, 20],
        },
    },
    "seeds": {
        "summary": "A paired experiment: three optimizers over five seeds",
        "value": {
            "dataset": {"name": "digits"},
            "optimizers": ["sgd", "adam", "rmsprop"],
            "epochs": [5, 10],
            "seeds": [0, 1, 2, 3, 4],
            "target": {"metric": "val_accuracy", "value": 0.9},
        },
    },
    "full": {"summary": "Every field of the contract", "value": JOB_EXAMPLE},
    "keras2": {
        "summary": "Keras 2 spelling: lr and decay",
        "value": {
            "optimizers": [
                {"name": "SGD", "lr": 0.01, "decay": 1e-6, "momentum": 0.9, "nesterov": True}
            ],
            "epochs": 5,
        },
    },
}

KIND = JobKind(
    name="train",
    summary="An optimizer comparison: every optimizer x batch size x seed trained on a dataset.",
    spec=TrainSpec,
    record=TrainRecord,
    unit="epoch",
    metrics=TASK_METRICS["classification"],
    lower_is_better=LOWER_IS_BETTER,
    x_axes=("epoch", "steps", "examples", "seconds"),
    comparison=TrainComparison,
    comparison_params=ComparisonParams,
    compare=compare,
    plot_params=PlotParams,
    plot=_plot,
    examples=EXAMPLES,
    compare_across=compare_across,
    metrics_of=lambda spec: TASK_METRICS[spec.get("task") or "classification"],
    scored_runs=list,
)
