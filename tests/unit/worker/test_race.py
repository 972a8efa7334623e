"""The race for real: Keras optimizers stepping (x, y) on the test functions."""

import uuid

from core.objectives import OBJECTIVES
from core.records import EpochRecord
from worker.training.race import RacePlan, race
from worker.training.run import TrainingHooks


def run(
    function: str, optimizer: dict, steps: int, *, cancel_after_chunks: int | None = None
) -> tuple[str, list[list[EpochRecord]], int | None]:
    chunks: list[list[EpochRecord]] = []

    def cancel() -> bool:
        return cancel_after_chunks is not None and len(chunks) >= cancel_after_chunks

    outcome = race(
        RacePlan(
            run_id=uuid.uuid4(),
            function=function,
            start=OBJECTIVES[function].start,
            optimizer=optimizer,
            steps=steps,
            flush_every=50,
        ),
        hooks=TrainingHooks(
            on_start=lambda sha, env: None,
            on_record=lambda r: None,
            on_records=chunks.append,
            cancel_requested=cancel,
        ),
    )
    return outcome.status, chunks, outcome.diverged_epoch


def test_every_step_is_recorded_once_in_order_and_momentum_finds_a_himmelblau_minimum() -> None:
    status, chunks, _ = run(
        "himmelblau", {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9}, 300
    )
    records = [r for chunk in chunks for r in chunk]
    assert status == "succeeded"
    assert [r.epoch for r in records] == list(range(301)) == [r.steps for r in records]
    assert (records[0].x, records[0].y) == OBJECTIVES["himmelblau"].start
    last = records[-1]
    assert last.x is not None and last.y is not None
    assert OBJECTIVES["himmelblau"].distance(last.x, last.y)[0] < 1e-3
    for r in records:
        assert r.x is not None and r.y is not None
        assert r.loss == float(OBJECTIVES["himmelblau"].f(r.x, r.y))
    assert len(chunks) <= 7  # written in chunks, not step by step


def test_the_same_race_twice_gives_the_same_path() -> None:
    config = {"name": "adam", "learning_rate": 0.05}
    _, first, _ = run("rosenbrock", config, 100)
    _, second, _ = run("rosenbrock", config, 100)
    assert [(r.x, r.y) for c in first for r in c] == [(r.x, r.y) for c in second for r in c]


def test_too_large_a_step_diverges_and_says_where() -> None:
    status, chunks, step = run("rosenbrock", {"name": "sgd", "learning_rate": 0.1}, 200)
    assert status == "diverged" and step is not None and step < 50
    assert [r.epoch for c in chunks for r in c][-1] <= step


def test_a_cancel_request_stops_the_race_between_chunks() -> None:
    status, chunks, _ = run("beale", {"name": "adam"}, 1000, cancel_after_chunks=1)
    assert status == "cancelled" and len(chunks) == 1
