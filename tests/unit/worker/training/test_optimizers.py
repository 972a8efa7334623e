"""The registry in core is data; these tests hold it to the real Keras constructors."""

import inspect

import keras
import pytest

from core.kinds.train.spec import TrainSpec
from core.optimizers import (
    OPTIMIZER_CLASSES,
    OPTIMIZER_PARAMS,
    REQUIRED,
    SCHEDULE_CLASSES,
    SCHEDULE_PARAMS,
    optimizer_params,
)
from worker.training.optimizers import build_optimizer, build_schedule, current_learning_rate

NOT_USER_ARGUMENTS = {"self", "name", "kwargs"}
# MultiOptimizer assigns other optimizers to groups of variables: not an arm of its own.
NOT_ARMS = {"Optimizer", "LossScaleOptimizer", "MultiOptimizer"}


def keras_arguments(cls: type) -> dict[str, object]:
    return {
        name: p.default
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name not in NOT_USER_ARGUMENTS
    }


@pytest.mark.parametrize("name", list(OPTIMIZER_PARAMS))
def test_registry_matches_the_keras_constructor(name: str) -> None:
    actual = keras_arguments(getattr(keras.optimizers, OPTIMIZER_CLASSES[name]))
    registry = {k: p.default for k, p in optimizer_params(name).items()}
    assert set(registry) == set(actual)
    assert registry == actual


def test_piecewise_segments_build_keras_piecewise_constant_decay() -> None:
    spec = TrainSpec.model_validate(
        {
            "optimizers": [
                {
                    "name": "sgd",
                    "learning_rate": {
                        "schedule": "piecewise_constant",
                        "segments": [{"steps": 10, "value": 0.1}, {"steps": 5, "value": 0.01}],
                        "then": 0.001,
                    },
                }
            ]
        }
    )
    schedule = build_schedule(spec.optimizers[0].config["learning_rate"])
    assert [float(schedule(s)) for s in (0, 10, 11, 15, 16, 100)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    )


@pytest.mark.parametrize("kind", list(SCHEDULE_PARAMS))
def test_schedule_registry_matches_keras(kind: str) -> None:
    actual = keras_arguments(getattr(keras.optimizers.schedules, SCHEDULE_CLASSES[kind]))
    registry = SCHEDULE_PARAMS[kind]
    assert set(registry) == set(actual)
    for key, param in registry.items():
        if param.default is REQUIRED or key == "initial_learning_rate":
            assert actual[key] is inspect.Parameter.empty
        else:
            assert actual[key] == param.default


def test_every_optimizer_this_keras_ships_is_in_the_registry() -> None:
    shipped = {
        name
        for name, obj in vars(keras.optimizers).items()
        if inspect.isclass(obj)
        and issubclass(obj, keras.optimizers.Optimizer)
        and name not in NOT_ARMS
    }
    assert shipped == set(OPTIMIZER_CLASSES.values())


@pytest.mark.parametrize("name", list(OPTIMIZER_PARAMS))
def test_every_resolved_configuration_builds(name: str) -> None:
    spec = TrainSpec.model_validate({"optimizers": [name]})
    optimizer = build_optimizer(spec.optimizers[0].config)
    assert type(optimizer).__name__ == OPTIMIZER_CLASSES[name]


def test_keras2_decay_builds_the_keras2_learning_rate_curve() -> None:
    spec = TrainSpec.model_validate({"optimizers": [{"name": "sgd", "lr": 0.1, "decay": 0.5}]})
    schedule = build_schedule(spec.optimizers[0].config["learning_rate"])
    for step in (0, 1, 10):
        assert float(schedule(step)) == pytest.approx(0.1 / (1 + 0.5 * step))


def test_current_learning_rate_reads_a_constant_rate() -> None:
    optimizer = build_optimizer(
        TrainSpec.model_validate({"optimizers": ["rmsprop"]}).optimizers[0].config
    )
    assert current_learning_rate(optimizer) == pytest.approx(0.001)
