"""The race's contract: recognised by its objective, validated, one run per optimizer."""

import pytest

from core.kinds import parse_job
from core.kinds.race.spec import RACE_EXAMPLE, RaceSpec


def test_a_race_is_recognised_by_its_objective_and_validated() -> None:
    spec = parse_job(RACE_EXAMPLE)
    assert isinstance(spec, RaceSpec) and spec.objective.start_point == (-1.5, 2.0)
    default = parse_job({"objective": {"function": "beale"}, "optimizers": ["adam"]})
    assert isinstance(default, RaceSpec) and default.objective.start_point == (1.0, 1.5)
    with pytest.raises(ValueError, match="rosenbrock"):
        parse_job({"objective": {"function": "sphere"}, "optimizers": ["adam"]})
    with pytest.raises(ValueError, match="less than or equal to 1000000"):
        parse_job({"objective": {"function": "beale", "start": [1e9, 0]}, "optimizers": ["sgd"]})
    with pytest.raises(ValueError, match="steps"):
        parse_job({**RACE_EXAMPLE, "steps": 0})


def test_a_race_has_one_run_per_optimizer_without_seed_or_batch_size() -> None:
    runs = parse_job(RACE_EXAMPLE).expand()
    assert [r.label for r in runs] == [
        "sgd(lr=0.0005)",
        "momentum",
        "rmsprop(lr=0.01)",
        "adam(lr=0.05)",
    ]
    assert {(r.budget, r.seed, r.batch_size) for r in runs} == {(500, None, None)}
