"""Search spaces and samplers: what a tuning job searches, and the configurations it draws.

A space maps an optimizer argument (or a learning-rate schedule's, as `learning_rate.<name>`)
to a distribution. Draws are a function of the space, the number of trials, the sampler and
its seed only: the same job draws the same configurations. Dimensions are taken in sorted
order, so the order the client wrote them in (which JSONB does not keep) changes nothing.
"""

import itertools
import math
import uuid
import warnings
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

import numpy as np
from pydantic import Discriminator, Field, StrictBool, StrictFloat, StrictInt, Tag

from core.contract import ContractModel, Integer

Sampler = Literal["sobol", "random", "grid"]
Finite = Annotated[StrictFloat | StrictInt, Field(allow_inf_nan=False)]
Pair = Annotated[list[Finite], Field(min_length=2, max_length=2)]
IntPair = Annotated[list[Integer], Field(min_length=2, max_length=2)]
Option = Annotated[StrictFloat | StrictInt | StrictBool | None, Field(allow_inf_nan=False)]


class LogUniform(ContractModel):
    """Uniform in log space between two positive bounds: [1e-5, 1e-1]."""

    log_uniform: Pair

    def check(self) -> str | None:
        lo, hi = self.log_uniform
        if lo <= 0:
            return f"log_uniform needs positive bounds; got {lo}"
        return None if lo < hi else f"log_uniform needs low < high; got [{lo}, {hi}]"

    def at(self, u: float) -> float:
        lo, hi = (math.log(v) for v in self.log_uniform)
        return float(math.exp(lo + u * (hi - lo)))

    def levels(self, m: int) -> list[Any]:
        lo, hi = self.log_uniform
        return [float(v) for v in np.geomspace(lo, hi, m)] if m > 1 else [math.sqrt(lo * hi)]

    def ends(self) -> tuple[float, float]:
        return (self.log_uniform[0], self.log_uniform[1])

    def position(self, value: float) -> float:
        lo, hi = (math.log(v) for v in self.log_uniform)
        return (math.log(value) - lo) / (hi - lo)


class FromRangeTest(LogUniform):
    """The learning rate searched log-uniformly over the usable interval a finished
    learning-rate range test (an lr_range job) found for this optimizer: {"from_range_test":
    JOB_ID}. The service writes the interval in as `log_uniform` when the job is submitted, so
    the stored job says exactly what was searched, and where it came from."""

    from_range_test: uuid.UUID = Field(strict=False)  # JSON gives the id as a string
    log_uniform: Pair | None = None  # type: ignore[assignment]

    @property
    def resolved(self) -> bool:
        return self.log_uniform is not None

    def check(self) -> str | None:
        return super().check() if self.resolved else None


class Uniform(ContractModel):
    """Uniform between two bounds: [0.8, 0.999]."""

    uniform: Pair

    def check(self) -> str | None:
        lo, hi = self.uniform
        return None if lo < hi else f"uniform needs low < high; got [{lo}, {hi}]"

    def at(self, u: float) -> float:
        lo, hi = self.uniform
        return float(lo + u * (hi - lo))

    def levels(self, m: int) -> list[Any]:
        lo, hi = self.uniform
        return [float(v) for v in np.linspace(lo, hi, m)] if m > 1 else [(lo + hi) / 2]

    def ends(self) -> tuple[float, float]:
        return (float(self.uniform[0]), float(self.uniform[1]))

    def position(self, value: float) -> float:
        lo, hi = self.uniform
        return (value - lo) / (hi - lo)


class IntUniform(ContractModel):
    """Each integer between two bounds (both included) equally likely: [1, 8]."""

    int_uniform: IntPair

    def check(self) -> str | None:
        lo, hi = self.int_uniform
        return None if lo < hi else f"int_uniform needs low < high; got [{lo}, {hi}]"

    def at(self, u: float) -> int:
        lo, hi = self.int_uniform
        return int(min(hi, lo + math.floor(u * (hi - lo + 1))))

    def levels(self, m: int) -> list[Any]:
        lo, hi = self.int_uniform
        found = sorted({round(v) for v in np.linspace(lo, hi, m)}) if m > 1 else [(lo + hi) // 2]
        return [int(v) for v in found]

    def ends(self) -> tuple[float, float]:
        return (float(self.int_uniform[0]), float(self.int_uniform[1]))

    def position(self, value: float) -> float:
        lo, hi = self.int_uniform
        return (value - lo) / (hi - lo)


class Choice(ContractModel):
    """One of the listed values, each equally likely: [true, false] or [0.0, 0.9, 0.99]."""

    choice: Annotated[list[Option], Field(min_length=1, max_length=64)]

    def check(self) -> str | None:
        distinct = {repr(v) for v in self.choice}
        return None if len(distinct) == len(self.choice) else "choice lists a value twice"

    def at(self, u: float) -> Any:
        return self.choice[min(len(self.choice) - 1, math.floor(u * len(self.choice)))]

    def levels(self, m: int) -> list[Any]:
        return list(self.choice)


def _distribution_of(value: Any) -> str | None:
    if isinstance(value, FromRangeTest) or (isinstance(value, dict) and "from_range_test" in value):
        return "from_range_test"
    if isinstance(value, dict) and len(value) == 1:
        return str(next(iter(value)))
    if isinstance(value, ContractModel):
        return next(iter(type(value).model_fields))
    return None


if TYPE_CHECKING:
    Distribution = LogUniform | Uniform | IntUniform | Choice
else:
    Distribution = Annotated[
        Union[  # noqa: UP007
            Annotated[FromRangeTest, Tag("from_range_test")],
            Annotated[LogUniform, Tag("log_uniform")],
            Annotated[Uniform, Tag("uniform")],
            Annotated[IntUniform, Tag("int_uniform")],
            Annotated[Choice, Tag("choice")],
        ],
        Discriminator(
            _distribution_of,
            custom_error_type="distribution",
            custom_error_message="a distribution is one of {log_uniform: [lo, hi]}, "
            "{uniform: [lo, hi]}, {int_uniform: [lo, hi]}, {choice: [...]} or, for "
            "learning_rate, {from_range_test: JOB_ID}",
        ),
    ]

SearchKey = Annotated[
    str, Field(pattern=r"^[a-z_][a-z0-9_]{0,63}(\.[a-z_][a-z0-9_]{0,63})?$", max_length=130)
]
SearchSpace = Annotated[
    dict[SearchKey, Distribution],
    Field(
        max_length=16,
        description="Arguments to search instead of fixing them, each with a distribution; "
        "a schedule's as learning_rate.<argument>. The rest are fixed as given.",
    ),
]

DISTRIBUTION_NAMES: dict[type, str] = {
    LogUniform: "log_uniform",
    Uniform: "uniform",
    IntUniform: "int_uniform",
    Choice: "choice",
}
DIMENSION_KINDS: dict[str, tuple[type, ...]] = {
    "float": (LogUniform, Uniform, Choice),
    "int": (IntUniform, Choice),
    "bool": (Choice,),
    "str_list": (),
}


def grid_levels(space: dict[str, Distribution], trials: int) -> dict[str, list[Any]] | str:
    """The levels of each dimension of a full grid of `trials` points, or why there is none:
    each choice gives its values, the numeric dimensions share one number of levels."""
    keys = sorted(space)
    numeric = [k for k in keys if not isinstance(space[k], Choice)]
    fixed = math.prod(len(space[k].levels(0)) for k in keys if isinstance(space[k], Choice))
    if trials % fixed:
        return f"a grid over these choices has a multiple of {fixed} points, not {trials}"
    rest = trials // fixed
    if not numeric:
        return (
            {k: space[k].levels(0) for k in keys}
            if rest == 1
            else (f"a grid of only choices has {fixed} points, not {trials}")
        )
    d = len(numeric)
    m = round(rest ** (1 / d))
    if m**d != rest:
        low = max(1, math.floor(rest ** (1 / d) + 1e-9))
        return (
            f"a grid over {d} numeric dimensions needs trials = (choices) x m^{d}; {trials} is "
            f"not (try {fixed * low**d} or {fixed * (low + 1) ** d})"
        )
    levels = {k: space[k].levels(m if k in numeric else 0) for k in keys}
    for k in numeric:
        if len(levels[k]) < m:
            return f"{k}: {len(levels[k])} distinct integers cannot fill {m} grid levels"
    return levels


def unit_points(dimensions: int, trials: int, sampler: Sampler, seed: int) -> np.ndarray:
    """`trials` points in the unit cube [0, 1)^dimensions (sobol: scrambled, by the seed)."""
    if dimensions == 0:
        return np.zeros((trials, 0))
    if sampler == "random":
        return np.random.default_rng(seed).random((trials, dimensions))
    from scipy.stats import qmc

    sobol = qmc.Sobol(d=dimensions, scramble=True, seed=seed)
    with warnings.catch_warnings():  # balance needs a power of two; any count is valid
        warnings.simplefilter("ignore", UserWarning)
        return np.asarray(sobol.random(trials))


def draw(
    space: dict[str, Distribution], trials: int, sampler: Sampler, seed: int
) -> list[dict[str, Any]]:
    """The searched values of each trial, in trial order."""
    keys = sorted(space)
    if sampler == "grid":
        levels = grid_levels(space, trials)
        if isinstance(levels, str):
            raise ValueError(levels)
        return [
            dict(zip(keys, point, strict=True)) for point in itertools.product(*levels.values())
        ]
    points = unit_points(len(keys), trials, sampler, seed)
    return [{k: space[k].at(float(u)) for k, u in zip(keys, row, strict=True)} for row in points]


def apply(config: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """An optimizer configuration with the searched values in (a schedule's by dotted key)."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in config.items()}
    for key, value in values.items():
        head, _, tail = key.partition(".")
        if tail:
            out[head][tail] = value
        else:
            out[head] = value
    return out


def describe(dist: Distribution) -> str:
    if isinstance(dist, Choice):
        return f"choice {dist.choice}"
    name = type(dist).model_fields
    field = next(iter(name))
    lo, hi = getattr(dist, field)
    return f"{field} [{lo:g}, {hi:g}]"
