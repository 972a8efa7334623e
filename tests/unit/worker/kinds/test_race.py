"""The race for real: Keras optimizers stepping (x, y) on the test functions."""

import importlib
from pathlib import Path
from typing import Any

import pytest

from core.kinds.race.objectives import OBJECTIVES
from core.kinds.race.records import RaceRecord
from core.kinds.race.spec import RaceSpec
from core.models import RunStatus
from tests.conftest import run_info
from worker.kinds import run_function
from worker.runs import RunContext, RunHooks


def run(
    function: str,
    optimizer: dict[str, Any],
    steps: int,
    *,
    cancel_after_chunks: int | None = None,
) -> tuple[str, list[list[RaceRecord]], int | None]:
    chunks: list[list[RaceRecord]] = []

    def cancel() -> bool:
        return cancel_after_chunks is not None and len(chunks) >= cancel_after_chunks

    spec = RaceSpec.model_validate(
        {"objective": {"function": function}, "optimizers": [optimizer], "steps": steps}
    )
    info = run_info(
        label="x", optimizer=spec.optimizers[0].config, budget=steps, status=RunStatus.RUNNING
    )
    hooks = RunHooks(
        on_start=lambda sha, env: None,
        on_records=lambda records: chunks.append(list(records)),  # type: ignore[arg-type]
        cancel_requested=cancel,
    )
    context = RunContext(run=info, spec=spec, hooks=hooks, cache_dir=Path("."), store=None)
    outcome = run_function("race")(context)
    return outcome.status, chunks, outcome.diverged_at


RACE_RUN = importlib.import_module("worker.kinds.race.run")


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 50 steps, and none handed over for the time passed: the chunks a test sees do
    not depend on this machine's speed (a slow run once made 8 where 7 were allowed)."""
    monkeypatch.setattr(RACE_RUN, "FLUSH_EVERY", 50)
    monkeypatch.setattr(RACE_RUN, "FLUSH_SECONDS", float("inf"))


def test_every_step_is_recorded_once_in_order_and_momentum_finds_a_himmelblau_minimum() -> None:
    status, chunks, _ = run(
        "himmelblau", {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9}, 300
    )
    records = [r for chunk in chunks for r in chunk]
    assert status == "succeeded"
    assert [r.step for r in records] == list(range(301))
    assert (records[0].x, records[0].y) == OBJECTIVES["himmelblau"].start
    last = records[-1]
    assert last.x is not None and last.y is not None
    assert OBJECTIVES["himmelblau"].distance(last.x, last.y)[0] < 1e-3
    for r in records:
        assert r.x is not None and r.y is not None
        assert r.f == float(OBJECTIVES["himmelblau"].f(r.x, r.y))
    assert [len(c) for c in chunks] == [50] * 6 + [1]  # written in chunks, not step by step


def test_a_slow_race_hands_its_steps_over_as_the_time_passes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past FLUSH_SECONDS since the last hand-over, the steps go out without waiting for a
    full chunk (set below zero here: every step is past it)."""
    monkeypatch.setattr(RACE_RUN, "FLUSH_SECONDS", -1.0)
    status, chunks, _ = run("himmelblau", {"name": "adam"}, 20)
    assert status == "succeeded"
    # step 0 goes out with step 1, at the first look
    assert [[r.step for r in c] for c in chunks] == [[0, 1]] + [[s] for s in range(2, 21)]


def test_the_same_race_twice_gives_the_same_path() -> None:
    config = {"name": "adam", "learning_rate": 0.05}
    _, first, _ = run("rosenbrock", config, 100)
    _, second, _ = run("rosenbrock", config, 100)
    assert [(r.x, r.y) for c in first for r in c] == [(r.x, r.y) for c in second for r in c]


def test_too_large_a_step_diverges_and_says_where() -> None:
    status, chunks, step = run("rosenbrock", {"name": "sgd", "learning_rate": 0.1}, 200)
    assert status == "diverged" and step is not None and step < 50
    assert [r.step for c in chunks for r in c][-1] <= step


def test_a_cancel_request_stops_the_race_between_chunks() -> None:
    status, chunks, _ = run("beale", {"name": "adam"}, 1000, cancel_after_chunks=1)
    assert status == "cancelled" and len(chunks) == 1
