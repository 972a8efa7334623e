"""The training job's contract: the sweep, the model against the dataset, the service's limits,
and how the job expands into runs."""

from typing import Any

import pytest
from pydantic import ValidationError

from core.kinds.train.spec import JOB_EXAMPLE, TrainSpec
from core.settings import Settings


def errors(data: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as info:
        TrainSpec.model_validate(data)
    return [(e["loc"], e["msg"]) for e in info.value.errors()]


def test_design_example_is_accepted_and_round_trips() -> None:
    spec = TrainSpec.model_validate(JOB_EXAMPLE)
    assert [o.canonical for o in spec.optimizers] == ["sgd", "adam", "rmsprop"]
    assert spec.batch_size == [32, 128] and spec.epochs == [10] and spec.seeds == [0]
    assert TrainSpec.model_validate(spec.model_dump(mode="json")) == spec


def test_scalars_and_lists_are_both_accepted_for_the_sweep() -> None:
    spec = TrainSpec.model_validate(
        {"optimizers": ["adam"], "batch_size": 64, "epochs": [20, 5], "seeds": 3}
    )
    assert spec.batch_size == [64] and spec.epochs == [5, 20] and spec.seeds == [3]
    assert spec.max_epochs == 20


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"optimizers": []}, ("optimizers",)),
        ({"optimizers": ["sgd"], "batch_size": [0]}, ("batch_size", 0)),
        ({"optimizers": ["sgd"], "epochs": [0]}, ("epochs", 0)),
        ({"optimizers": ["sgd"], "seeds": [-1]}, ("seeds", 0)),
        ({"optimizers": ["sgd"], "batch_size": [32, 32]}, ("batch_size",)),
        ({"optimizers": ["sgd"], "batch_size": 1.5}, ("batch_size", 0)),
        ({"optimizers": ["sgd"], "dataset": {"name": "imagenet"}}, ("dataset", "named", "name")),
        (
            {"optimizers": ["sgd"], "dataset": {"name": "digits", "validation_split": 1.5}},
            ("dataset", "named", "validation_split"),
        ),
        ({"optimizers": ["sgd"], "dataset": {"id": "not-a-uuid"}}, ("dataset", "upload", "id")),
        ({"optimizers": ["sgd"], "dataset": 7}, ("dataset",)),
        (
            {"optimizers": ["sgd"], "model": {"id": "x", "weights": "all"}},
            ("model", "upload", "id"),
        ),
        ({"optimizers": ["sgd"], "model": {"preset": "transformer"}}, ("model",)),
        ({"optimizers": ["sgd"], "colour": "blue"}, ("colour",)),
        ({"optimizers": ["sgd"], "evaluate_initial": "yes"}, ("evaluate_initial",)),
    ],
)
def test_bad_input_names_the_field(data: dict[str, Any], where: tuple[Any, ...]) -> None:
    locs = [loc for loc, _ in errors(data)]
    assert where in locs, locs


def test_cnn_on_vector_data_is_rejected() -> None:
    [(_, msg)] = errors(
        {"optimizers": ["sgd"], "model": {"preset": "cnn"}, "dataset": {"name": "synthetic"}}
    )
    assert msg.startswith("Value error, model: the cnn preset needs image data")


def test_cnn_fits_digits_and_layer_list_is_checked() -> None:
    TrainSpec.model_validate(
        {"optimizers": ["sgd"], "model": {"preset": "cnn", "filters": [8, 16]}}
    )
    layers = [{"type": "conv2d", "filters": 4}, {"type": "max_pool2d", "pool_size": 4}] * 2
    [(_, msg)] = errors({"optimizers": ["sgd"], "model": {"preset": "layers", "layers": layers}})
    assert "below 1 pixel" in msg


def test_limits_name_the_field_and_the_limit() -> None:
    spec = TrainSpec.model_validate(
        {"optimizers": ["sgd", "adam"], "batch_size": [1, 2, 3], "seeds": [0, 1], "epochs": 2000}
    )
    settings = Settings(max_runs_per_job=10, max_epochs=1000, max_batch_size=2)
    problems = dict(spec.problems(settings))
    assert "limit of 1000" in problems[("epochs", 0)]
    why = problems[("optimizers",)]
    assert "12 runs (2 optimizers x 3 batch sizes x 2 seeds)" in why and "limit is 10" in why
    assert ("batch_size", 2) in problems and ("batch_size", 1) not in problems
    assert TrainSpec.settings_bounds(settings) == {"epochs": 1000, "batch_size": 2}


def test_job_is_optimizers_times_batch_sizes_times_seeds() -> None:
    spec = TrainSpec.model_validate(
        {
            "optimizers": ["sgd", "adam", "rmsprop"],
            "batch_size": [32, 128],
            "seeds": [0, 1],
            "epochs": [5, 10],
        }
    )
    runs = spec.expand()
    assert len(runs) == 12 and [r.index for r in runs] == list(range(12))
    assert len({(r.optimizer["name"], r.batch_size, r.seed) for r in runs}) == 12
    assert {r.budget for r in runs} == {10}  # epoch budgets share one run to the largest


def test_runs_of_one_seed_come_together_and_labels_show_the_batch_size() -> None:
    spec = TrainSpec.model_validate(
        {"optimizers": ["sgd", "adam"], "batch_size": [16, 64], "seeds": [7, 8]}
    )
    runs = spec.expand()
    assert [r.seed for r in runs] == [7, 7, 7, 7, 8, 8, 8, 8]
    assert runs[0].label == "sgd bs=16" and runs[3].label == "adam bs=64"
    assert [r.arm for r in runs[:4]] == [0, 1, 0, 1]


def test_single_batch_size_keeps_plain_labels() -> None:
    spec = TrainSpec.model_validate({"optimizers": [{"name": "adam", "label": "mine"}]})
    assert spec.expand()[0].label == "mine"


def test_the_task_and_loss_are_written_out_and_must_fit_the_dataset() -> None:
    spec = TrainSpec.model_validate({"optimizers": ["sgd"]})
    assert (spec.task, spec.loss, spec.outputs) == (
        "classification",
        "sparse_categorical_crossentropy",
        10,
    )
    regression = {"name": "synthetic", "task": "regression"}
    spec = TrainSpec.model_validate({"optimizers": ["sgd"], "dataset": regression})
    assert (spec.task, spec.loss, spec.outputs) == ("regression", "mean_squared_error", 1)
    assert spec.default_metric() == "val_loss"
    assert TrainSpec.model_validate(spec.model_dump(mode="json")) == spec
    for body, words in (
        ({"dataset": regression, "loss": "binary_crossentropy"}, "needs class labels"),
        ({"loss": "binary_crossentropy"}, "needs two classes; the dataset has 10"),
        ({"task": "regression"}, "task is regression but the dataset's is classification"),
        (
            {"dataset": regression, "target": {"metric": "val_accuracy", "value": 0.9}},
            "a regression records val_loss, val_mae",
        ),
    ):
        with pytest.raises(ValueError, match=words):
            TrainSpec.model_validate({"optimizers": ["sgd"], **body})
