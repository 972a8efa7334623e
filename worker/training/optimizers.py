"""Keras optimizers and learning-rate schedules from resolved configurations."""

from typing import Any

import keras

from core.optimizers import OPTIMIZER_CLASSES, SCHEDULE_CLASSES, PiecewiseSchedule


def build_schedule(config: dict[str, Any]) -> keras.optimizers.schedules.LearningRateSchedule:
    arguments = dict(config)
    kind = arguments.pop("schedule")
    if kind == "piecewise_constant":
        arguments = PiecewiseSchedule.model_validate(config).keras_arguments()
    return getattr(keras.optimizers.schedules, SCHEDULE_CLASSES[kind])(**arguments)


def build_optimizer(config: dict[str, Any]) -> keras.optimizers.Optimizer:
    """The optimizer a resolved configuration (core.optimizers.Optimizer.config) describes."""
    arguments = dict(config)
    name = arguments.pop("name")
    if isinstance(arguments.get("learning_rate"), dict):
        arguments["learning_rate"] = build_schedule(arguments["learning_rate"])
    return getattr(keras.optimizers, OPTIMIZER_CLASSES[name])(**arguments)


def current_learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    """The learning rate in force now (a schedule evaluated at the current step).

    Rounded to float32's 7 significant digits, so 0.01 reads 0.01 and not 0.00999999977.
    """
    return float(f"{float(keras.ops.convert_to_numpy(optimizer.learning_rate)):.7g}")
