"""The tuned comparison: each optimizer searches its space with the same number of trials on
the tuning seeds, the best configuration by validation is chosen, and the chosen ones are
judged on fresh seeds and the held-out test set."""

from typing import Any

from core.kinds.base import Drawing, JobKind
from core.kinds.train.records import TrainRecord
from core.kinds.train.spec import LOWER_IS_BETTER, TASK_METRICS
from core.kinds.tune.compare import TuneComparison, TuneComparisonParams, TunePlotParams, compare
from core.kinds.tune.protocol import advance
from core.kinds.tune.spec import TUNE_EXAMPLE, TuneSpec


def _plot(drawing: Drawing) -> bytes:
    from core.kinds.tune.plot import draw  # matplotlib loads on the first plot

    return draw(drawing)


EXAMPLES: dict[str, dict[str, Any]] = {
    "tuned": {"summary": "SGD with momentum against Adam, both tuned", "value": TUNE_EXAMPLE},
    "small": {
        "summary": "A small tuned comparison: 4 trials each, one rung, 3 final seeds",
        "value": {
            "dataset": {"name": "digits"},
            "optimizers": [
                {
                    "name": "sgd",
                    "momentum": 0.9,
                    "search": {"learning_rate": {"log_uniform": [1e-3, 1.0]}},
                },
                {"name": "adam", "search": {"learning_rate": {"log_uniform": [1e-4, 1e-1]}}},
            ],
            "tuning": {
                "trials": 4,
                "tuning_seeds": [0],
                "final_seeds": [1, 2, 3],
                "prune": {"rungs": [1], "keep": 0.5},
            },
            "epochs": 3,
        },
    },
}

KIND = JobKind(
    name="tune",
    summary="A tuned comparison: equal search budgets, selection on validation with the "
    "tuning seeds, the verdict on fresh seeds and the test set.",
    spec=TuneSpec,
    record=TrainRecord,
    unit="epoch",
    metrics=TASK_METRICS["classification"],
    lower_is_better=LOWER_IS_BETTER,
    x_axes=("epoch", "steps", "examples", "seconds"),
    comparison=TuneComparison,
    comparison_params=TuneComparisonParams,
    compare=compare,
    plot_params=TunePlotParams,
    plot=_plot,
    examples=EXAMPLES,
    metrics_of=lambda spec: TASK_METRICS[spec.get("task") or "classification"],
    advance=advance,
    views=("budget", "sensitivity"),
    # The verdict's runs: the chosen configurations on the final seeds, not the search.
    scored_runs=lambda runs: [r for r in runs if r.phase == 2],
)
