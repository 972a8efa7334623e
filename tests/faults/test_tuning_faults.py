"""A tuned comparison under kills: the training process is SIGKILLed while the search waits
at its rung and again in phase 2. Each rung is still decided once, by the same trials, and
every run ends with the records of the same job run without a fault."""

from typing import Any

import pytest

from tests.faults.conftest import TALLY, Rig
from tests.faults.test_faults import TOLERANCE, records, wait_done

pytestmark = pytest.mark.faults

TUNE: dict[str, Any] = {
    "name": "tuned under faults",
    "dataset": {"name": "digits"},
    "model": {"preset": "mlp", "hidden_units": [64, 64]},
    "optimizers": [
        {"name": "sgd", "search": {"learning_rate": {"log_uniform": [1e-2, 1.0]}}},
        {"name": "adam", "search": {"learning_rate": {"log_uniform": [1e-4, 1e-1]}}},
    ],
    "tuning": {
        "trials": 2,
        "tuning_seeds": [0],
        "final_seeds": [1, 2],
        "prune": {"rungs": [2], "keep": 0.5},
    },
    "epochs": 4,
    "batch_size": 16,
    # Trials one at a time: a trial at the rung waits while the other of its optimizer trains
    # to it. Fused, they reach it together and it is decided at once: no wait to kill in.
    "fuse": False,
}
NUMBERS = ("loss", "accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy")


def outcome(rig: Rig, job_id: str) -> dict[tuple[Any, ...], tuple[str, list[dict[str, Any]]]]:
    """Each run by (phase, arm, trial, seed): its status and its records in epoch order."""
    assert rig.http is not None
    job = rig.http.get(f"/jobs/{job_id}").json()
    by_run: dict[str, list[dict[str, Any]]] = {}
    for record in records(rig, job_id):
        by_run.setdefault(record["run_id"], []).append(record)
    return {
        (r["phase"], r["arm"], r["trial"], r["seed"]): (r["status"], by_run.get(r["id"], []))
        for r in job["runs"]
    }


def submit(rig: Rig) -> str:
    assert rig.http is not None
    response = rig.http.post("/jobs", json=TUNE)
    assert response.status_code == 201, response.text
    TALLY.jobs += 1
    return str(response.json()["id"])


def runs(rig: Rig, job_id: str) -> list[dict[str, Any]]:
    assert rig.http is not None
    found: list[dict[str, Any]] = rig.http.get(f"/jobs/{job_id}").json()["runs"]
    return found


def test_a_tuning_job_killed_at_its_rung_and_in_phase_two_ends_as_if_uninterrupted(
    rig: Rig,
) -> None:
    rig.api()
    worker = rig.worker()
    reference = wait_done(rig, submit(rig), timeout=600)
    assert reference["status"] == "succeeded", reference
    expected = outcome(rig, reference["id"])

    job_id = submit(rig)
    rig.kill_when(
        worker,
        "a run paused at the rung",
        lambda: any(r["status"] == "paused" for r in runs(rig, job_id)),
    )
    TALLY.kill("SIGKILL training process while a tuning rung waits")
    rig.kill_when(
        worker,
        "a final-seed run training",
        lambda: any(r["phase"] == 2 and r["status"] == "running" for r in runs(rig, job_id)),
    )
    TALLY.kill("SIGKILL training process in a tuning job's phase 2")
    done = wait_done(rig, job_id, timeout=600)
    assert done["status"] == "succeeded", done

    got = outcome(rig, job_id)
    assert got.keys() == expected.keys()
    assert sum(s == "pruned" for s, _ in got.values()) == 2  # one of each optimizer's two
    for key, (status, mine) in got.items():
        want_status, theirs = expected[key]
        assert status == want_status, key
        epochs = [r["epoch"] for r in mine]
        duplicates = len(epochs) - len(set(epochs))
        TALLY.records_checked += len(epochs)
        TALLY.duplicates += duplicates
        TALLY.records_lost += len({r["epoch"] for r in theirs} - set(epochs))
        assert epochs == [r["epoch"] for r in theirs], key
        for a, b in zip(mine, theirs, strict=True):
            for name in NUMBERS:
                if b[name] is None:
                    assert a[name] is None, (key, name)
                    continue
                difference = abs(a[name] - b[name]) / max(1.0, abs(b[name]))
                TALLY.max_metric_difference = max(TALLY.max_metric_difference, difference)
                assert difference <= TOLERANCE, (key, a["epoch"], name, a[name], b[name])
    assert max(r["attempt"] for r in done["runs"]) >= 2  # the kills landed on runs
