"""A tuning job's decisions in Postgres: runs pause at a rung in the transaction that decides
when the last of the group arrives, resumed runs get their messages through the outbox,
phase 2 is queued when phase 1 ends, and a cancel or the reaper treat paused runs right."""

import json
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from core import progress
from core.db import transaction
from core.models import OutboxMessage, Run, RunStatus
from core.reaper import reap
from core.repositories import RunRepository
from core.settings import Settings
from core.stream import MetricsStream, make_redis
from tests.conftest import auth
from tests.service.test_api import record, store, submit, worker_context
from worker.service import store_records

QUEUE = "optarena.test.tuning"
JOB: dict[str, Any] = {
    "dataset": {"name": "digits"},
    "optimizers": [
        {"name": "sgd", "search": {"learning_rate": {"log_uniform": [1e-3, 1.0]}}},
        {"name": "adam", "search": {"learning_rate": {"log_uniform": [1e-4, 1e-1]}}},
    ],
    "tuning": {
        "trials": 4,
        "tuning_seeds": [0],
        "final_seeds": [1, 2],
        "prune": {"rungs": [1], "keep": 0.5},
    },
    "epochs": 2,
}


def pause(sessions: sessionmaker[Session], run_id: str) -> None:
    """What the worker does when a run reaches a rung: claim, then pause and decide at once."""
    with transaction(sessions) as session:
        runs = RunRepository(session)
        claimed = runs.claim(uuid.UUID(run_id), worker="test")
        assert claimed is not None
        assert runs.pause(claimed.id, attempt=claimed.attempt, at=1)
        progress.settle(session, claimed.job_id, queue=QUEUE)


def finish(sessions: sessionmaker[Session], run_id: str) -> None:
    with transaction(sessions) as session:
        runs = RunRepository(session)
        claimed = runs.claim(uuid.UUID(run_id), worker="test")
        assert claimed is not None
        runs.finish(claimed.id, status=RunStatus.SUCCEEDED, summary={"epochs_completed": 2})
        progress.settle(session, claimed.job_id, queue=QUEUE)


def states(
    sessions: sessionmaker[Session], job_id: str
) -> dict[int, tuple[int | None, int | None, str]]:
    with transaction(sessions) as session:
        rows = session.execute(
            select(Run.index, Run.phase, Run.trial, Run.status).where(
                Run.job_id == uuid.UUID(job_id)
            )
        ).tuples()
        return {index: (phase, trial, status.value) for index, phase, trial, status in rows}


def unsent(sessions: sessionmaker[Session], run_id: str) -> int:
    with transaction(sessions) as session:
        return len(
            session.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.run_id == uuid.UUID(run_id), OutboxMessage.queue == QUEUE
                )
            ).all()
        )


def test_a_rung_is_decided_by_the_last_arrival_and_phase_two_follows_phase_one(
    client: TestClient, sessions: sessionmaker[Session], test_settings: Settings
) -> None:
    job = submit(client, JOB)
    ctx = worker_context(
        test_settings,
        sessions,
        MetricsStream(make_redis(test_settings.redis_url), maxlen=100, ttl_seconds=60),
    )
    runs = {(r["arm"], r["trial"]): r for r in job["runs"]}
    for (_, trial), run in runs.items():
        store(job, [record(run["id"], 1, 0.5 + trial / 10)], ctx)
    for trial in range(3):
        pause(sessions, runs[(0, trial)]["id"])
    assert {
        s
        for i, (_, t, s) in states(sessions, job["id"]).items()
        if i % 2 == 0 and t is not None and t < 3
    } == {"paused"}
    pause(sessions, runs[(0, 3)]["id"])  # the last of sgd's trials: decided in its transaction
    after = states(sessions, job["id"])
    sgd = {t: s for i, (_, t, s) in after.items() if runs[(0, t)]["index"] == i}
    assert sgd == {0: "pruned", 1: "pruned", 2: "queued", 3: "queued"}
    assert unsent(sessions, runs[(0, 3)]["id"]) == 1 and unsent(sessions, runs[(0, 0)]["id"]) == 0
    pruned = client.get(f"/jobs/{job['id']}").json()
    note = next(r for r in pruned["runs"] if r["id"] == runs[(0, 0)]["id"])
    assert note["summary"]["pruned_at"] == 1 and "threshold 0.7" in note["error"]
    assert next(r for r in pruned["runs"] if r["id"] == runs[(0, 2)]["id"])["cleared_at"] == 1

    for trial in range(4):
        pause(sessions, runs[(1, trial)]["id"])
    for arm in (0, 1):
        for trial in (2, 3):
            store(job, [record(runs[(arm, trial)]["id"], 2, 0.9 - trial / 100)], ctx)
            finish(sessions, runs[(arm, trial)]["id"])
    final = {i: s for i, s in states(sessions, job["id"]).items() if s[0] == 2}
    assert sorted(final) == [8, 9, 10, 11] and {s[1] for s in final.values()} == {2}
    assert {s[2] for s in final.values()} == {"queued"}
    answer = client.get(f"/jobs/{job['id']}").json()
    assert answer["status"] == "running" and len(answer["runs"]) == 12
    assert {r["seed"] for r in answer["runs"] if r["phase"] == 2} == {1, 2}
    assert client.get(f"/jobs/{job['id']}/comparison").json()["phase"] == "final seeds"


def test_a_cancel_ends_paused_runs_and_the_reaper_leaves_them_alone(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    job = submit(client, JOB)
    first = job["runs"][0]["id"]
    pause(sessions, first)
    with transaction(sessions) as session:  # a paused run has no heartbeat to go stale
        session.execute(
            text("UPDATE runs SET started_at = now() - interval '1 hour' WHERE id = :id"),
            {"id": first},
        )
    reaped = reap(sessions, stale_after=1, max_attempts=2, queue=QUEUE)
    assert uuid.UUID(first) not in reaped.requeued + reaped.failed
    assert client.post(f"/jobs/{job['id']}/cancel").status_code == 202
    done = client.get(f"/jobs/{job['id']}").json()
    assert done["status"] == "cancelled"
    assert {r["status"] for r in done["runs"]} == {"cancelled"}


def range_test(
    client: TestClient, sessions: sessionmaker[Session], ctx: Any, *, finished: bool = True
) -> dict[str, Any]:
    """A range test of sgd and adam whose stored steps put each one's usable interval where
    the loss falls: a tanh drop centred on 1e-2 (sgd) and 1e-3 (adam)."""
    import math
    from datetime import UTC, datetime

    from core.kinds.lr_range.records import LrRangeRecord
    from core.kinds.lr_range.schedule import learning_rates

    job = submit(
        client,
        {
            "lr_range": {"min": 1e-6, "max": 1.0, "steps": 61, "smoothing": 0.0},
            "optimizers": ["sgd", "adam"],
            "dataset": {"name": "digits"},
        },
    )
    for run in job["runs"]:
        centre = -2 if run["label"] == "sgd" else -3
        rates = learning_rates(1e-6, 1.0, 61)
        losses = [2 - math.tanh(2 * (math.log10(lr) - centre)) + lr for lr in rates]
        records = [
            LrRangeRecord(
                run_id=uuid.UUID(run["id"]),
                step=i + 1,
                learning_rate=lr,
                loss=loss,
                smoothed_loss=loss,
                seconds=0.01,
                time=datetime.now(UTC),
            )
            for i, (lr, loss) in enumerate(zip(rates, losses, strict=True))
        ]
        store_records(uuid.UUID(job["id"]), records, ctx)
        if finished:
            finish(sessions, run["id"])
    return job


def test_a_tuning_job_takes_its_interval_from_a_range_test(
    client: TestClient, sessions: sessionmaker[Session], test_settings: Settings
) -> None:
    ctx = worker_context(
        test_settings,
        sessions,
        MetricsStream(make_redis(test_settings.redis_url), maxlen=100, ttl_seconds=60),
    )
    tested = range_test(client, sessions, ctx)
    answer = client.get(f"/jobs/{tested['id']}/comparison").json()
    usable = {a["label"]: a["suggestion"]["usable"] for a in answer["arms"]}
    assert usable["sgd"][0] < 1e-2 < usable["sgd"][1]  # the fall is centred on 1e-2
    assert usable["adam"][0] < 1e-3 < usable["adam"][1]
    body = JOB | {
        "optimizers": [
            {"name": "sgd", "search": {"learning_rate": {"from_range_test": tested["id"]}}},
            {"name": "adam", "search": {"learning_rate": {"from_range_test": tested["id"]}}},
        ]
    }
    job = submit(client, body)
    stored = {o["name"]: o["search"]["learning_rate"] for o in job["spec"]["optimizers"]}
    for name in ("sgd", "adam"):
        # the stored job says what was searched, and where it came from
        assert stored[name]["from_range_test"] == tested["id"]
        assert stored[name]["log_uniform"] == pytest.approx(usable[name], rel=1e-5)
        drawn = [r["optimizer"]["learning_rate"] for r in job["runs"] if r["label"] == name]
        assert all(usable[name][0] * 0.99 <= lr <= usable[name][1] * 1.01 for lr in drawn)

    def refused(search: dict[str, Any], why: str, status: int = 422) -> None:
        wrong = JOB | {"optimizers": [{"name": "sgd", "search": search}, JOB["optimizers"][1]]}
        response = client.post("/jobs", json=wrong)
        assert response.status_code == status, response.text
        assert why in json.dumps(response.json()), response.json()

    training = submit(client, {"optimizers": ["sgd"], "epochs": 1})
    running = range_test(client, sessions, ctx, finished=False)
    unknown = str(uuid.uuid4())
    refused({"learning_rate": {"from_range_test": unknown}}, f"no job {unknown}")
    refused({"learning_rate": {"from_range_test": training["id"]}}, "is a train job")
    refused({"learning_rate": {"from_range_test": running["id"]}}, "is queued")
    refused({"momentum": {"from_range_test": tested["id"]}}, "learning_rate only")
    nadam = JOB | {
        "optimizers": [
            {"name": "nadam", "search": {"learning_rate": {"from_range_test": tested["id"]}}},
            JOB["optimizers"][1],
        ]
    }
    response = client.post("/jobs", json=nadam)
    assert response.status_code == 422 and "has no arm 'nadam'" in response.text
    other_model = body | {"model": {"preset": "mlp", "hidden_units": [8]}}
    response = client.post("/jobs", json=other_model)
    assert response.status_code == 422 and "ran on another model" in response.text
    with TestClient(client.app, headers=auth("other")) as other:
        response = other.post("/jobs", json=body)
        assert response.status_code == 422 and f"no job {tested['id']}" in response.text
