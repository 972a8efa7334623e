"""The optimizer contract: every Keras optimizer by name with Keras's defaults, its arguments'
bounds, the Keras 2 spellings, schedules, and a schema that says exactly what is accepted."""

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from core.optimizers import OPTIMIZER_CLASSES, OPTIMIZER_PARAMS, Optimizer, OptimizerSpec
from core.optimizers.spec import arm_labels, describe_optimizer

OPTIMIZERS: TypeAdapter[list[Optimizer]] = TypeAdapter(list[OptimizerSpec])


def parse(*items: Any) -> list[Optimizer]:
    return OPTIMIZERS.validate_python(list(items))


def errors(*items: Any) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as info:
        parse(*items)
    return [(e["loc"], e["msg"]) for e in info.value.errors()]


def test_every_keras_optimizer_is_accepted_by_name_and_by_class_with_keras_defaults() -> None:
    by_name = parse(*OPTIMIZER_PARAMS)
    by_class = parse(*OPTIMIZER_CLASSES.values())
    assert [o.config for o in by_name] == [o.config for o in by_class]
    adamw = by_name[list(OPTIMIZER_PARAMS).index("adamw")].config
    assert adamw["weight_decay"] == 0.004 and adamw["learning_rate"] == 0.001
    assert by_name[0].config == {
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
    [sgd] = parse({"name": "SGD", "lr": 0.01, "decay": 1e-6, "momentum": 0.9, "nesterov": True})
    assert sgd.config["learning_rate"] == {
        "schedule": "inverse_time",
        "initial_learning_rate": 0.01,
        "decay_steps": 1,
        "decay_rate": 1e-6,
        "staircase": False,
    }
    assert sgd.config["momentum"] == 0.9 and sgd.config["nesterov"] is True
    [adam] = parse({"name": "adam", "lr": 0.003, "decay": 0})
    assert adam.config["learning_rate"] == 0.003


def test_the_stored_form_reads_back_as_the_same_configuration() -> None:
    given = parse(
        {"name": "sgd", "lr": 0.1, "decay": 0.5, "label": "keras 2"},
        {"name": "adam", "learning_rate": {"schedule": "cosine", "decay_steps": 10}},
    )
    again = parse(*[o.model_dump() for o in given])
    assert [o.config for o in again] == [o.config for o in given]
    assert again[0].label == "keras 2"


@pytest.mark.parametrize(
    ("item", "where", "words"),
    [
        ("adamm", (0,), "unknown optimizer 'adamm'"),
        ({"name": "sgd", "betta": 0.9}, (0, "sgd"), "unknown argument 'betta' for optimizer 'sgd'"),
        (
            {"name": "sgd", "learning_rate": 0},
            (0, "sgd", "learning_rate", "rate"),
            "greater than 0",
        ),
        ({"name": "sgd", "learning_rate": "fast"}, (0, "sgd", "learning_rate", "rate"), "number"),
        ({"name": "sgd", "learning_rate": True}, (0, "sgd", "learning_rate", "rate"), "number"),
        ({"name": "adam", "beta_1": 1.0}, (0, "adam", "beta_1"), "less than 1"),
        ({"name": "sgd", "nesterov": 1}, (0, "sgd", "nesterov"), "boolean"),
        ({"name": "sgd", "lr": 0.1, "learning_rate": 0.1}, (0, "sgd"), "not both"),
        ({"name": "sgd", "clipnorm": 1.0, "clipvalue": 0.5}, (0, "sgd"), "clipnorm, clipvalue"),
        (
            {
                "name": "sgd",
                "decay": 0.1,
                "learning_rate": {"schedule": "cosine", "decay_steps": 5},
            },
            (0, "sgd"),
            "cannot be combined",
        ),
        (
            {"name": "sgd", "learning_rate": {"schedule": "cosine"}},
            (0, "sgd", "learning_rate", "schedule", "cosine", "decay_steps"),
            "Field required",
        ),
    ],
)
def test_bad_optimizers_are_refused_at_the_argument_with_the_reason(
    item: Any, where: tuple[Any, ...], words: str
) -> None:
    found = errors(item)
    assert any(loc == where and words in msg for loc, msg in found), found


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
        {"schedule": "polynomial", "decay_steps": 100},
        {"schedule": "cosine_restarts", "first_decay_steps": 100},
    ],
)
def test_learning_rate_schedules_are_accepted(schedule: dict[str, Any]) -> None:
    [adam] = parse({"name": "adam", "learning_rate": schedule})
    resolved = adam.config["learning_rate"]
    assert resolved["schedule"] == schedule["schedule"]
    assert resolved["initial_learning_rate"] == schedule.get("initial_learning_rate", 0.001)


def test_piecewise_constant_is_given_as_segments_and_becomes_keras_boundaries() -> None:
    lr = {
        "schedule": "piecewise_constant",
        "segments": [{"steps": 1000, "value": 0.1}, {"steps": 2000, "value": 0.01}],
        "then": 0.001,
    }
    [sgd] = parse({"name": "sgd", "learning_rate": lr})
    from core.optimizers import PiecewiseSchedule

    keras_form = PiecewiseSchedule.model_validate(sgd.config["learning_rate"]).keras_arguments()
    assert keras_form == {"boundaries": [1000, 3000], "values": [0.1, 0.01, 0.001]}
    assert errors({"name": "sgd", "learning_rate": {**lr, "segments": []}})


def test_labels_describe_changed_arguments_and_repeats_are_numbered() -> None:
    optimizers = parse(
        "adam", "adam", {"name": "sgd", "momentum": 0.9}, {"name": "sgd", "label": "a"}
    )
    assert arm_labels(optimizers) == ["adam", "adam #2", "sgd(momentum=0.9)", "a"]
    assert describe_optimizer(parse({"name": "rmsprop", "learning_rate": 0.01})[0].config) == (
        "rmsprop(lr=0.01)"
    )


def test_the_schema_lists_every_name_and_refuses_the_conflicts_the_model_refuses() -> None:
    schema = OPTIMIZERS.json_schema()
    names, objects = schema["items"]["anyOf"]
    assert set(names["enum"]) == set(OPTIMIZER_PARAMS) | set(OPTIMIZER_CLASSES.values())
    assert set(objects["discriminator"]["mapping"]) == set(names["enum"])
    sgd = schema["$defs"]["SGD"]
    assert sgd["additionalProperties"] is False
    lr_twice = {"required": ["lr", "learning_rate"], "properties": {"lr": {"type": "number"}}}
    assert {"not": lr_twice} in sgd["allOf"]
    assert sgd["properties"]["momentum"]["maximum"] == 1.0
