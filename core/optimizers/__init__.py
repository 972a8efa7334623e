"""Keras optimizers and schedules: the registry (data) and the contract generated from it."""

from core.optimizers.registry import (
    CLIP_ARGUMENTS,
    OPTIMIZER_CLASSES,
    OPTIMIZER_PARAMS,
    REQUIRED,
    SCHEDULE_CLASSES,
    SCHEDULE_PARAMS,
    SHARED_PARAMS,
    Param,
    optimizer_params,
)
from core.optimizers.spec import (
    NAMES,
    OPTIMIZER_MODELS,
    SCHEDULE_MODELS,
    Optimizer,
    OptimizerSpec,
    PiecewiseSchedule,
    Schedule,
    arm_labels,
    describe_optimizer,
)

__all__ = [
    "CLIP_ARGUMENTS",
    "NAMES",
    "OPTIMIZER_CLASSES",
    "OPTIMIZER_MODELS",
    "OPTIMIZER_PARAMS",
    "REQUIRED",
    "SCHEDULE_CLASSES",
    "SCHEDULE_MODELS",
    "SCHEDULE_PARAMS",
    "SHARED_PARAMS",
    "Optimizer",
    "OptimizerSpec",
    "Param",
    "PiecewiseSchedule",
    "Schedule",
    "arm_labels",
    "describe_optimizer",
    "optimizer_params",
]
