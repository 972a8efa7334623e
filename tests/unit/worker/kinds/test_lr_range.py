"""The range test for real: Keras optimizers on digits as their learning rate rises."""

import itertools
from pathlib import Path
from typing import Any

from core.kinds.lr_range.compare import read_run
from core.kinds.lr_range.records import LrRangeRecord
from core.kinds.lr_range.spec import LrRangeSpec
from core.models import RunStatus
from tests.conftest import run_info
from worker.kinds import run_function
from worker.runs import RunContext, RunHooks, RunOutcome


def range_test(optimizer: Any, **lr_range: Any) -> tuple[RunOutcome, list[LrRangeRecord], str]:
    spec = LrRangeSpec.model_validate(
        {
            "dataset": {"name": "digits"},
            "optimizers": [optimizer],
            "batch_size": 64,
            "lr_range": {"min": 1e-5, "max": 100.0, "steps": 60} | lr_range,
        }
    )
    [plan] = spec.expand()
    info = run_info(
        label=plan.label,
        optimizer=plan.optimizer,
        budget=plan.budget,
        seed=0,
        batch_size=64,
        status=RunStatus.RUNNING,
    )
    records: list[LrRangeRecord] = []
    started: list[str] = []
    hooks = RunHooks(
        on_start=lambda sha, env: started.append(sha),
        on_records=lambda found: records.extend(found),  # type: ignore[arg-type]
        cancel_requested=lambda: False,
    )
    context = RunContext(run=info, spec=spec, hooks=hooks, cache_dir=Path("."), store=None)
    outcome = run_function("lr_range")(context)
    return outcome, records, started[0]


def test_sgd_descends_then_blows_up_and_the_test_ends_there() -> None:
    outcome, records, _ = range_test("sgd")
    assert outcome.status == "succeeded"  # blowing up is the test's normal end
    assert outcome.summary["stopped_early"] is True
    steps = [r.step for r in records]
    assert steps == list(range(1, len(records) + 1)) and len(records) < 60
    assert records[0].learning_rate == 1e-5
    rates = [r.learning_rate for r in records]
    assert all(b > a for a, b in itertools.pairwise(rates))
    stop = outcome.summary["stopped_at_step"]
    assert stop == records[-1].step
    assert records[-1].smoothed_loss is None or records[-1].smoothed_loss > 4 * min(
        r.smoothed_loss for r in records if r.smoothed_loss is not None
    )
    run = run_info(id=records[0].run_id, summary=outcome.summary, label="sgd")
    found = read_run(run, records).suggestion
    assert found.blew_up_at == records[-1].learning_rate
    assert found.usable is not None and 1e-5 < found.usable[0] < found.usable[1]
    assert found.minimum is not None and found.minimum < found.blew_up_at


def test_optimizers_of_one_seed_start_from_the_same_weights_and_the_test_repeats() -> None:
    first, records, sha_sgd = range_test("sgd", stop_factor=None, steps=12)
    _, again, sha_again = range_test("sgd", stop_factor=None, steps=12)
    _, _, sha_adam = range_test("adam", stop_factor=None, steps=12)
    assert sha_sgd == sha_again == sha_adam
    assert [r.loss for r in records] == [r.loss for r in again]
    assert first.summary["stopped_early"] is False and len(records) == 12
