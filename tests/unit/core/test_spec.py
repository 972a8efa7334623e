import pytest
from pydantic import ValidationError

from core.optimizers import OPTIMIZER_PARAMS
from core.spec import JOB_EXAMPLE, JobSpec, Limits, check_limits, describe_optimizer


def errors(data: dict) -> list[tuple[tuple, str]]:
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate(data)
    return [(e["loc"], e["msg"]) for e in info.value.errors()]


def test_design_example_is_accepted_and_round_trips() -> None:
    spec = JobSpec.model_validate(JOB_EXAMPLE)
    assert [o.name for o in spec.optimizers] == ["sgd", "adam", "rmsprop"]
    assert spec.batch_size == [32, 128] and spec.epochs == [10] and spec.seeds == [0]
    assert JobSpec.model_validate(spec.model_dump(mode="json")) == spec


def test_every_keras_optimizer_is_accepted_by_name_with_keras_defaults() -> None:
    spec = JobSpec.model_validate({"optimizers": list(OPTIMIZER_PARAMS)})
    adamw = spec.optimizers[list(OPTIMIZER_PARAMS).index("adamw")].config
    assert adamw["weight_decay"] == 0.004 and adamw["learning_rate"] == 0.001
    sgd = spec.optimizers[0].config
    assert sgd == {
        "name": "sgd",
        "learning_rate": 0.01,
        "momentum": 0.0,
        "nesterov": False,
        "weight_decay": None,
        "clipnorm": None,
        "clipvalue": None,
        "global_clipnorm": None,
        "use_ema": False,
        "ema_momentum": 0.99,
        "ema_overwrite_frequency": None,
        "loss_scale_factor": None,
        "gradient_accumulation_steps": None,
    }


def test_keras2_lr_and_decay_mean_inverse_time_decay_per_step() -> None:
    spec = JobSpec.model_validate(
        {
            "optimizers": [
                {"name": "sgd", "lr": 0.01, "decay": 1e-6, "momentum": 0.9, "nesterov": True}
            ]
        }
    )
    config = spec.optimizers[0].config
    assert config["learning_rate"] == {
        "schedule": "inverse_time",
        "initial_learning_rate": 0.01,
        "decay_steps": 1,
        "decay_rate": 1e-6,
        "staircase": False,
    }
    assert config["momentum"] == 0.9 and config["nesterov"] is True


def test_keras2_lr_alone_is_learning_rate() -> None:
    spec = JobSpec.model_validate({"optimizers": [{"name": "adam", "lr": 0.003, "decay": 0}]})
    assert spec.optimizers[0].config["learning_rate"] == 0.003


def test_lr_and_learning_rate_together_are_rejected() -> None:
    [(loc, msg)] = errors({"optimizers": [{"name": "adam", "lr": 0.1, "learning_rate": 0.1}]})
    assert loc == ("optimizers", 0) and "not both" in msg


def test_unknown_optimizer_is_rejected_with_its_name() -> None:
    [(loc, msg)] = errors({"optimizers": ["adamm"]})
    assert loc == ("optimizers", 0)
    assert "unknown optimizer 'adamm'" in msg and "adam" in msg


def test_unknown_argument_is_rejected_with_its_name() -> None:
    [(_, msg)] = errors({"optimizers": [{"name": "sgd", "betta": 0.9}]})
    assert "unknown argument 'betta' for optimizer 'sgd'" in msg


@pytest.mark.parametrize("lr", [0, -0.1, "fast", True])
def test_non_positive_or_non_numeric_learning_rate_is_rejected(lr: object) -> None:
    [(_, msg)] = errors({"optimizers": [{"name": "sgd", "learning_rate": lr}]})
    assert "learning_rate" in msg


def test_argument_out_of_keras_range_is_rejected() -> None:
    [(_, msg)] = errors({"optimizers": [{"name": "adam", "beta_1": 1.0}]})
    assert "beta_1 must be in [0, 1)" in msg


def test_only_one_clipping_argument_is_accepted() -> None:
    [(_, msg)] = errors({"optimizers": [{"name": "sgd", "clipnorm": 1.0, "clipvalue": 0.5}]})
    assert "clipnorm" in msg and "clipvalue" in msg


@pytest.mark.parametrize(
    "schedule",
    [
        {
            "schedule": "exponential",
            "initial_learning_rate": 0.1,
            "decay_steps": 100,
            "decay_rate": 0.9,
        },
        {"schedule": "inverse_time", "decay_steps": 10, "decay_rate": 0.5},
        {"schedule": "cosine", "initial_learning_rate": 0.01, "decay_steps": 1000},
        {"schedule": "piecewise_constant", "boundaries": [100, 200], "values": [0.1, 0.01, 0.001]},
        {"schedule": "polynomial", "decay_steps": 100},
        {"schedule": "cosine_restarts", "first_decay_steps": 100},
    ],
)
def test_learning_rate_schedules_are_accepted(schedule: dict) -> None:
    spec = JobSpec.model_validate({"optimizers": [{"name": "adam", "learning_rate": schedule}]})
    resolved = spec.optimizers[0].config["learning_rate"]
    assert resolved["schedule"] == schedule["schedule"]
    if "initial_learning_rate" in resolved:
        assert resolved["initial_learning_rate"] == schedule.get("initial_learning_rate", 0.001)


def test_piecewise_constant_needs_one_more_value_than_boundaries() -> None:
    lr = {"schedule": "piecewise_constant", "boundaries": [10], "values": [0.1]}
    [(_, msg)] = errors({"optimizers": [{"name": "sgd", "learning_rate": lr}]})
    assert "one more value" in msg


def test_schedule_without_required_argument_names_it() -> None:
    [(_, msg)] = errors({"optimizers": [{"name": "sgd", "learning_rate": {"schedule": "cosine"}}]})
    assert "decay_steps" in msg


def test_scalars_and_lists_are_both_accepted_for_the_sweep() -> None:
    spec = JobSpec.model_validate(
        {"optimizers": ["adam"], "batch_size": 64, "epochs": [20, 5], "seeds": 3}
    )
    assert spec.batch_size == [64] and spec.epochs == [5, 20] and spec.seeds == [3]
    assert spec.max_epochs == 20


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"optimizers": []}, ("optimizers",)),
        ({"optimizers": ["sgd"], "batch_size": 0}, ("batch_size", 0)),
        ({"optimizers": ["sgd"], "epochs": [0]}, ("epochs", 0)),
        ({"optimizers": ["sgd"], "seeds": [-1]}, ("seeds", 0)),
        ({"optimizers": ["sgd"], "batch_size": [32, 32]}, ("batch_size",)),
        ({"optimizers": ["sgd"], "dataset": {"name": "imagenet"}}, ("dataset",)),
        (
            {"optimizers": ["sgd"], "dataset": {"name": "digits", "validation_split": 1.5}},
            ("dataset", "digits", "validation_split"),
        ),
        ({"optimizers": ["sgd"], "model": {"preset": "transformer"}}, ("model",)),
        ({"optimizers": ["sgd"], "colour": "blue"}, ("colour",)),
    ],
)
def test_bad_input_names_the_field(data: dict, where: tuple) -> None:
    locs = [loc for loc, _ in errors(data)]
    assert where in locs


def test_cnn_on_vector_data_is_rejected() -> None:
    [(_, msg)] = errors(
        {"optimizers": ["sgd"], "model": {"preset": "cnn"}, "dataset": {"name": "synthetic"}}
    )
    assert msg.startswith("Value error, model: the cnn preset needs image data")


def test_cnn_fits_digits_and_layer_list_is_checked() -> None:
    JobSpec.model_validate({"optimizers": ["sgd"], "model": {"preset": "cnn", "filters": [8, 16]}})
    layers = [{"type": "conv2d", "filters": 4}, {"type": "max_pool2d", "pool_size": 4}] * 2
    [(_, msg)] = errors({"optimizers": ["sgd"], "model": {"preset": "layers", "layers": layers}})
    assert "below 1 pixel" in msg


def test_duplicate_labels_are_rejected_and_auto_labels_are_distinct() -> None:
    [(_, msg)] = errors(
        {"optimizers": [{"name": "sgd", "label": "a"}, {"name": "adam", "label": "a"}]}
    )
    assert "'a' is used twice" in msg
    spec = JobSpec.model_validate(
        {"optimizers": ["adam", "adam", {"name": "sgd", "momentum": 0.9}]}
    )
    assert spec.arm_labels() == ["adam", "adam #2", "sgd(momentum=0.9)"]


def test_label_describes_changed_arguments() -> None:
    spec = JobSpec.model_validate({"optimizers": [{"name": "rmsprop", "learning_rate": 0.01}]})
    assert describe_optimizer(spec.optimizers[0].config) == "rmsprop(lr=0.01)"


def test_limits_name_the_field_and_the_limit() -> None:
    spec = JobSpec.model_validate(
        {"optimizers": ["sgd", "adam"], "batch_size": [1, 2, 3], "seeds": [0, 1], "epochs": 2000}
    )
    problems = dict(
        check_limits(spec, Limits(max_runs_per_job=10, max_epochs=1000, max_batch_size=2))
    )
    assert "limit of 1000" in problems[("epochs",)]
    assert "12 runs" in problems[("optimizers",)] and "limit is 10" in problems[("optimizers",)]
    assert ("batch_size", 2) in problems
