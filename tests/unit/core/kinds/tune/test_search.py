import itertools
import math

import numpy as np
import pytest
from pydantic import ValidationError

from core.kinds import parse_job
from core.kinds.tune.search import (
    Choice,
    IntUniform,
    LogUniform,
    Uniform,
    apply,
    draw,
    grid_levels,
)
from core.kinds.tune.spec import TuneSpec

LR = LogUniform(log_uniform=[1e-5, 1e-1])


def job(**tuning: object) -> dict[str, object]:
    return {
        "dataset": {"name": "digits"},
        "optimizers": [
            {
                "name": "sgd",
                "momentum": 0.9,
                "search": {"learning_rate": {"log_uniform": [1e-4, 1.0]}},
            },
            {
                "name": "adam",
                "search": {
                    "learning_rate": {"log_uniform": [1e-5, 1e-1]},
                    "epsilon": {"log_uniform": [1e-10, 1.0]},
                },
            },
        ],
        "tuning": {"trials": 8, **tuning},
        "epochs": 4,
    }


@pytest.mark.parametrize("sampler", ["sobol", "random"])
def test_the_same_job_draws_the_same_configurations_and_another_seed_others(sampler: str) -> None:
    space = {"learning_rate": LR, "beta_1": Uniform(uniform=[0.8, 0.99])}
    first = draw(space, 16, sampler, 7)  # type: ignore[arg-type]
    assert first == draw(space, 16, sampler, 7)  # type: ignore[arg-type]
    assert first != draw(space, 16, sampler, 8)  # type: ignore[arg-type]
    # the order the client wrote the dimensions in changes nothing (JSONB does not keep it)
    assert first == draw(dict(reversed(space.items())), 16, sampler, 7)  # type: ignore[arg-type]


@pytest.mark.parametrize("sampler", ["sobol", "random", "grid"])
def test_draws_lie_in_their_ranges(sampler: str) -> None:
    space = {
        "learning_rate": LR,
        "beta_1": Uniform(uniform=[0.8, 0.99]),
        "steps": IntUniform(int_uniform=[1, 4]),
        "amsgrad": Choice(choice=[True, False]),
    }
    drawn = draw(space, 16, sampler, 0)  # type: ignore[arg-type]  # a grid: 2 x 2^3
    assert len(drawn) == 16
    for values in drawn:
        assert 1e-5 <= values["learning_rate"] <= 1e-1
        assert 0.8 <= values["beta_1"] <= 0.99
        assert values["steps"] in {1, 2, 3, 4} and isinstance(values["steps"], int)
        assert values["amsgrad"] in {True, False}


def test_log_uniform_spreads_evenly_over_decades_not_over_values() -> None:
    drawn = [v["learning_rate"] for v in draw({"learning_rate": LR}, 1024, "sobol", 0)]
    decades = np.histogram(np.log10(drawn), bins=[-5, -4, -3, -2, -1])[0]
    assert list(decades) == [256, 256, 256, 256]  # sobol balances 2^k points exactly
    # a uniform draw over [1e-5, 1e-1] would put ~90% in the top decade
    assert sum(d < 1e-2 for d in drawn) == 768


def test_sobol_covers_the_unit_interval_better_than_random() -> None:
    def gap(values: list[float]) -> float:
        ordered = sorted([0.0, *values, 1.0])
        return max(b - a for a, b in itertools.pairwise(ordered))

    space = {"x": Uniform(uniform=[0.0, 1.0])}
    sobol = gap([v["x"] for v in draw(space, 64, "sobol", 3)])  # type: ignore[arg-type]
    random = gap([v["x"] for v in draw(space, 64, "random", 3)])  # type: ignore[arg-type]
    assert sobol <= 2 / 64 < random


def test_a_grid_fills_its_levels_log_spaced_and_needs_a_matching_count() -> None:
    space = {"learning_rate": LR, "amsgrad": Choice(choice=[True, False])}
    drawn = draw(space, 8, "grid", 0)  # type: ignore[arg-type]
    rates = sorted({v["learning_rate"] for v in drawn})
    assert len(rates) == 4 and math.isclose(rates[0], 1e-5) and math.isclose(rates[-1], 1e-1)
    assert np.allclose(np.diff(np.log10(rates)), 4 / 3)
    assert {(v["learning_rate"], v["amsgrad"]) for v in drawn} == {
        (r, a) for r in rates for a in (True, False)
    }
    assert "not 7" in str(grid_levels(space, 7))  # type: ignore[arg-type]
    two = {"learning_rate": LR, "beta_1": Uniform(uniform=[0.8, 0.99])}
    assert isinstance(grid_levels(two, 16), dict)  # type: ignore[arg-type]
    assert "try 9 or 16" in str(grid_levels(two, 12))  # type: ignore[arg-type]


def test_schedule_arguments_are_searched_by_dotted_key() -> None:
    config = {"name": "sgd", "learning_rate": {"schedule": "cosine", "decay_steps": 100}}
    assert apply(config, {"learning_rate.decay_steps": 300})["learning_rate"]["decay_steps"] == 300
    assert config["learning_rate"]["decay_steps"] == 100  # the base is not changed


def test_a_tuning_job_is_inferred_expanded_trial_by_trial_and_round_trips() -> None:
    spec = parse_job(job(prune={"rungs": [2], "keep": 0.5}))
    assert isinstance(spec, TuneSpec)
    assert spec.metric == "val_accuracy"  # written out
    runs = spec.expand()
    assert len(runs) == 16 and {r.phase for r in runs} == {1}
    assert [(r.trial, r.arm) for r in runs[:4]] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    sgd = [r.optimizer for r in runs if r.arm == 0]
    assert all(o["momentum"] == 0.9 and o["name"] == "sgd" for o in sgd)
    assert len({o["learning_rate"] for o in sgd}) == 8
    assert spec.total_runs() == 16 + 2 * 5
    again = parse_job(spec.model_dump(mode="json"))
    assert again == spec and [r.optimizer for r in again.expand()] == [r.optimizer for r in runs]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"trials": [8, 4]}, "budgets differ"),
        ({"final_seeds": [0, 1]}, "both tuning and final seeds"),
        ({"prune": {"rungs": [4], "keep": 0.5}}, "before the last epoch"),
        ({"select_by": "accuracy"}, "selects on validation"),
        ({"sampler": "grid"}, "grid"),
    ],
)
def test_protocol_problems_are_refused_with_the_reason(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_job(job(**change))


def test_unequal_budgets_run_when_asked_for() -> None:
    spec = parse_job(job(trials=[8, 4], allow_unequal_budgets=True))
    assert isinstance(spec, TuneSpec) and spec.budgets() == [8, 4]


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"learning_rat": {"log_uniform": [1e-4, 1.0]}}, "no argument 'learning_rat'"),
        ({"momentum": {"uniform": [0.5, 1.5]}}, "1.5 is not a value sgd takes"),
        ({"learning_rate": {"log_uniform": [0.0, 1.0]}}, "positive bounds"),
        ({"learning_rate": {"log_uniform": [1.0, 0.1]}}, "low < high"),
        ({"nesterov": {"uniform": [0.0, 1.0]}}, "a bool argument takes choice"),
        ({"learning_rate": {"normal": [0.0, 1.0]}}, "a distribution is one of"),
    ],
)
def test_a_search_outside_what_keras_takes_is_refused(
    search: dict[str, object], message: str
) -> None:
    body = job()
    body["optimizers"] = [
        {"name": "sgd", "search": search},
        {"name": "adam", "search": {"learning_rate": {"log_uniform": [1e-4, 1e-1]}}},
    ]
    with pytest.raises(ValidationError, match=message):
        parse_job(body)


def test_a_searched_argument_cannot_also_be_fixed() -> None:
    body = job()
    body["optimizers"][0]["learning_rate"] = 0.1  # type: ignore[index]
    with pytest.raises(ValidationError, match="both given and searched"):
        parse_job(body)


def test_a_schedules_arguments_are_searched_within_its_bounds() -> None:
    body = job()
    body["optimizers"] = [
        {
            "name": "sgd",
            "learning_rate": {
                "schedule": "cosine",
                "initial_learning_rate": 0.1,
                "decay_steps": 100,
            },
            "search": {
                "learning_rate.decay_steps": {"int_uniform": [50, 500]},
                "learning_rate.alpha": {"uniform": [0.0, 0.5]},
            },
        },
        {"name": "adam", "search": {"learning_rate": {"log_uniform": [1e-4, 1e-1]}}},
    ]
    spec = parse_job(body)
    schedules = [r.optimizer["learning_rate"] for r in spec.expand() if r.arm == 0]
    assert {s["schedule"] for s in schedules} == {"cosine"}
    assert all(50 <= s["decay_steps"] <= 500 and 0 <= s["alpha"] <= 0.5 for s in schedules)
    assert len({s["decay_steps"] for s in schedules}) > 1
    body["optimizers"][0]["search"] = {"learning_rate.alpha": {"uniform": [0.0, 2.0]}}
    with pytest.raises(ValidationError, match=r"2\.0 is not a value sgd takes"):
        parse_job(body)
    body["optimizers"][0]["search"] = {"learning_rate.decay_rate": {"uniform": [0.1, 0.9]}}
    with pytest.raises(ValidationError, match="the cosine schedule has no argument 'decay_rate'"):
        parse_job(body)
