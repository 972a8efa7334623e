"""Test functions of two variables for the optimizer race, with analytic gradients.

Pure NumPy, so the worker steps them with any Keras backend and the API draws their contours
without Keras. Each function knows its minima (or, for the saddle, its saddle point) and a
window to draw.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Array = Any  # a NumPy array or a float: the functions are elementwise
Point = tuple[float, float]


@dataclass(frozen=True)
class Objective:
    name: str
    formula: str
    f: Callable[[Array, Array], Array]
    grad: Callable[[float, float], tuple[float, float]]
    # Where the race is won. For the saddle there is no minimum: the goal is to escape it.
    points: tuple[Point, ...]
    goal: Literal["reach", "escape"]
    start: Point
    window: tuple[Point, Point]  # (x_min, x_max), (y_min, y_max)
    minimum_value: float | None
    escape_below: float | None = None  # goal "escape": arrived once f(x, y) is below this

    def distance(self, x: float, y: float) -> tuple[float, Point]:
        """Distance to the nearest point of interest, and that point."""
        best = min(self.points, key=lambda p: math.hypot(x - p[0], y - p[1]))
        return math.hypot(x - best[0], y - best[1]), best


def _rosenbrock(x: Array, y: Array) -> Array:
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def _rosenbrock_grad(x: float, y: float) -> tuple[float, float]:
    return -2 * (1 - x) - 400 * x * (y - x**2), 200 * (y - x**2)


def _beale_terms(x: float, y: float) -> tuple[float, float, float]:
    return 1.5 - x + x * y, 2.25 - x + x * y**2, 2.625 - x + x * y**3


def _beale(x: Array, y: Array) -> Array:
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def _beale_grad(x: float, y: float) -> tuple[float, float]:
    a, b, c = _beale_terms(x, y)
    dx = 2 * a * (y - 1) + 2 * b * (y**2 - 1) + 2 * c * (y**3 - 1)
    dy = 2 * a * x + 2 * b * 2 * x * y + 2 * c * 3 * x * y**2
    return dx, dy


def _himmelblau(x: Array, y: Array) -> Array:
    return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


def _himmelblau_grad(x: float, y: float) -> tuple[float, float]:
    a, b = x**2 + y - 11, x + y**2 - 7
    return 4 * x * a + 2 * b, 2 * a + 4 * y * b


def _saddle(x: Array, y: Array) -> Array:
    return x**2 - y**2


def _saddle_grad(x: float, y: float) -> tuple[float, float]:
    return 2 * x, -2 * y


def _rastrigin(x: Array, y: Array) -> Array:
    two_pi = 2 * np.pi
    return 20 + x**2 - 10 * np.cos(two_pi * x) + y**2 - 10 * np.cos(two_pi * y)


def _rastrigin_grad(x: float, y: float) -> tuple[float, float]:
    two_pi = 2 * math.pi
    return (
        2 * x + 10 * two_pi * math.sin(two_pi * x),
        2 * y + 10 * two_pi * math.sin(two_pi * y),
    )


OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in (
        Objective(
            name="rosenbrock",
            formula="(1 - x)^2 + 100 (y - x^2)^2",
            f=_rosenbrock,
            grad=_rosenbrock_grad,
            points=((1.0, 1.0),),
            goal="reach",
            start=(-1.5, 2.0),
            window=((-2.0, 2.0), (-1.0, 3.0)),
            minimum_value=0.0,
        ),
        Objective(
            name="beale",
            formula="(1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2",
            f=_beale,
            grad=_beale_grad,
            points=((3.0, 0.5),),
            goal="reach",
            start=(1.0, 1.5),
            window=((-4.5, 4.5), (-4.5, 4.5)),
            minimum_value=0.0,
        ),
        Objective(
            name="himmelblau",
            formula="(x^2 + y - 11)^2 + (x + y^2 - 7)^2",
            f=_himmelblau,
            grad=_himmelblau_grad,
            points=(
                (3.0, 2.0),
                (-2.805118, 3.131312),
                (-3.779310, -3.283186),
                (3.584428, -1.848126),
            ),
            goal="reach",
            start=(0.0, 0.0),
            window=((-5.0, 5.0), (-5.0, 5.0)),
            minimum_value=0.0,
        ),
        Objective(
            name="saddle",
            formula="x^2 - y^2",
            f=_saddle,
            grad=_saddle_grad,
            points=((0.0, 0.0),),
            goal="escape",
            start=(1.0, 0.001),
            window=((-1.5, 1.5), (-1.5, 1.5)),
            minimum_value=None,
            escape_below=-1.0,
        ),
        Objective(
            name="rastrigin",
            formula="20 + x^2 - 10 cos(2 pi x) + y^2 - 10 cos(2 pi y)",
            f=_rastrigin,
            grad=_rastrigin_grad,
            points=((0.0, 0.0),),
            goal="reach",
            start=(2.2, 1.6),
            window=((-3.0, 3.0), (-3.0, 3.0)),
            minimum_value=0.0,
        ),
    )
}

ObjectiveName = Literal["rosenbrock", "beale", "himmelblau", "saddle", "rastrigin"]
