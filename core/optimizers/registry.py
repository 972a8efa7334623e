"""The optimizer and learning-rate-schedule registry, as data.

The job contract's optimizer models are generated from these tables (core.optimizers.spec),
so the API validates jobs without importing Keras; a worker test checks the tables against
the real Keras constructors so they cannot drift.
"""

from dataclasses import dataclass
from typing import Any, Literal

ParamKind = Literal["float", "int", "bool", "str_list"]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Param:
    """One hyperparameter: its type, Keras's default and the range Keras accepts."""

    kind: ParamKind
    default: Any
    nullable: bool = False
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def bounds(self) -> dict[str, float]:
        """The range as pydantic's (and JSON Schema's) bounds: ge/gt and le/lt."""
        found: dict[str, float] = {}
        if self.low is not None:
            found["gt" if self.low_open else "ge"] = self.low
        if self.high is not None:
            found["lt" if self.high_open else "le"] = self.high
        return found


def _f(default: Any, **bounds: Any) -> Param:
    return Param("float", default, **bounds)


def _unit(default: float) -> Param:
    return Param("float", default, low=0.0, high=1.0)


def _beta(default: float) -> Param:
    return Param("float", default, low=0.0, high=1.0, high_open=True)


EPSILON = Param("float", 1e-7, low=0.0)

# Arguments every Keras 3 optimizer takes (keras.optimizers.Optimizer.__init__), less `name`.
SHARED_PARAMS: dict[str, Param] = {
    "weight_decay": Param("float", None, nullable=True, low=0.0),
    "clipnorm": Param("float", None, nullable=True, low=0.0, low_open=True),
    "clipvalue": Param("float", None, nullable=True, low=0.0, low_open=True),
    "global_clipnorm": Param("float", None, nullable=True, low=0.0, low_open=True),
    "use_ema": Param("bool", False),
    "ema_momentum": _unit(0.99),
    "ema_overwrite_frequency": Param("int", None, nullable=True, low=1),
    "loss_scale_factor": Param("float", None, nullable=True, low=0.0, low_open=True),
    "gradient_accumulation_steps": Param("int", None, nullable=True, low=1),
}


def _lr(default: float) -> Param:
    return Param("float", default, low=0.0, low_open=True)


_ADAM_LIKE = {"beta_1": _beta(0.9), "beta_2": _beta(0.999), "epsilon": EPSILON}

# Each optimizer's own arguments with Keras 3.15's defaults; SHARED_PARAMS are added to each.
OPTIMIZER_PARAMS: dict[str, dict[str, Param]] = {
    "sgd": {"learning_rate": _lr(0.01), "momentum": _unit(0.0), "nesterov": Param("bool", False)},
    "rmsprop": {
        "learning_rate": _lr(0.001),
        "rho": _beta(0.9),
        "momentum": _unit(0.0),
        "epsilon": EPSILON,
        "centered": Param("bool", False),
    },
    "adagrad": {
        "learning_rate": _lr(0.001),
        "initial_accumulator_value": _f(0.1, low=0.0),
        "epsilon": EPSILON,
    },
    "adadelta": {"learning_rate": _lr(0.001), "rho": _beta(0.95), "epsilon": EPSILON},
    "adam": {"learning_rate": _lr(0.001), **_ADAM_LIKE, "amsgrad": Param("bool", False)},
    "adamw": {
        "learning_rate": _lr(0.001),
        "weight_decay": _f(0.004, low=0.0),
        **_ADAM_LIKE,
        "amsgrad": Param("bool", False),
    },
    "adamax": {"learning_rate": _lr(0.001), **_ADAM_LIKE},
    "nadam": {"learning_rate": _lr(0.001), **_ADAM_LIKE},
    "ftrl": {
        "learning_rate": _lr(0.001),
        "learning_rate_power": _f(-0.5, high=0.0),
        "initial_accumulator_value": _f(0.1, low=0.0),
        "l1_regularization_strength": _f(0.0, low=0.0),
        "l2_regularization_strength": _f(0.0, low=0.0),
        "l2_shrinkage_regularization_strength": _f(0.0, low=0.0),
        "beta": _f(0.0, low=0.0),
    },
    "lion": {"learning_rate": _lr(0.001), "beta_1": _unit(0.9), "beta_2": _unit(0.99)},
    "lamb": {"learning_rate": _lr(0.001), **_ADAM_LIKE},
    "adafactor": {
        "learning_rate": _lr(0.001),
        "beta_2_decay": _f(-0.8),
        "epsilon_1": _f(1e-30, low=0.0),
        "epsilon_2": _f(1e-3, low=0.0),
        "clip_threshold": _f(1.0, low=0.0, low_open=True),
        "relative_step": Param("bool", True),
    },
    "schedule_free_adamw": {
        "learning_rate": _lr(0.0025),
        "beta_1": _beta(0.9),
        "beta_2": _beta(0.999),
        "epsilon": Param("float", 1e-8, low=0.0),
        "warmup_steps": Param("int", 0, low=0),
    },
    "muon": {
        "learning_rate": _lr(0.001),
        "adam_beta_1": _beta(0.9),
        "adam_beta_2": _beta(0.999),
        "adam_weight_decay": _f(0.004, low=0.0),
        "epsilon": EPSILON,
        "weight_decay": _f(0.004, low=0.0),
        "exclude_layers": Param("str_list", None, nullable=True),
        "exclude_embeddings": Param("bool", True),
        "muon_a": _f(3.4445),
        "muon_b": _f(-4.775),
        "muon_c": _f(2.0315),
        "adam_lr_ratio": _f(1.0, low=0.0, low_open=True),
        "momentum": _unit(0.95),
        "ns_steps": Param("int", 5, low=1, high=100),
        "nesterov": Param("bool", True),
        "rms_rate": _f(0.2, low=0.0),
    },
}

# Keras class names, for the worker and for messages.
OPTIMIZER_CLASSES: dict[str, str] = {
    "sgd": "SGD",
    "rmsprop": "RMSprop",
    "adagrad": "Adagrad",
    "adadelta": "Adadelta",
    "adam": "Adam",
    "adamw": "AdamW",
    "adamax": "Adamax",
    "nadam": "Nadam",
    "ftrl": "Ftrl",
    "lion": "Lion",
    "lamb": "Lamb",
    "adafactor": "Adafactor",
    "schedule_free_adamw": "ScheduleFreeAdamW",
    "muon": "Muon",
}

_STEPS = Param("int", REQUIRED, low=1)
_INITIAL = Param("float", None, nullable=True, low=0.0, low_open=True)

# keras.optimizers.schedules, less `name`. A null initial_learning_rate takes the optimizer's.
# PiecewiseConstantDecay is given as segments instead (core.optimizers.spec.PiecewiseSchedule).
SCHEDULE_PARAMS: dict[str, dict[str, Param]] = {
    "exponential": {
        "initial_learning_rate": _INITIAL,
        "decay_steps": _STEPS,
        "decay_rate": Param("float", REQUIRED, low=0.0, low_open=True),
        "staircase": Param("bool", False),
    },
    "inverse_time": {
        "initial_learning_rate": _INITIAL,
        "decay_steps": _STEPS,
        "decay_rate": Param("float", REQUIRED, low=0.0),
        "staircase": Param("bool", False),
    },
    "cosine": {
        "initial_learning_rate": _INITIAL,
        "decay_steps": _STEPS,
        "alpha": _unit(0.0),
        "warmup_target": Param("float", None, nullable=True, low=0.0, low_open=True),
        "warmup_steps": Param("int", 0, low=0),
    },
    "cosine_restarts": {
        "initial_learning_rate": _INITIAL,
        "first_decay_steps": _STEPS,
        "t_mul": _f(2.0, low=0.0, low_open=True),
        "m_mul": _f(1.0, low=0.0, low_open=True),
        "alpha": _unit(0.0),
    },
    "polynomial": {
        "initial_learning_rate": _INITIAL,
        "decay_steps": _STEPS,
        "end_learning_rate": _f(0.0001, low=0.0),
        "power": _f(1.0, low=0.0, low_open=True),
        "cycle": Param("bool", False),
    },
}

SCHEDULE_CLASSES: dict[str, str] = {
    "exponential": "ExponentialDecay",
    "inverse_time": "InverseTimeDecay",
    "cosine": "CosineDecay",
    "cosine_restarts": "CosineDecayRestarts",
    "polynomial": "PolynomialDecay",
    "piecewise_constant": "PiecewiseConstantDecay",
}

CLIP_ARGUMENTS = ("clipnorm", "clipvalue", "global_clipnorm")


def optimizer_params(name: str) -> dict[str, Param]:
    """An optimizer's whole argument table: its own arguments, then the shared ones."""
    own = OPTIMIZER_PARAMS[name]
    return {**own, **{k: v for k, v in SHARED_PARAMS.items() if k not in own}}
