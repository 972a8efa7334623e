"""Comparison over seeds, cuts, cross-job comparison, CSV export and plots, through the API."""

import csv
import io
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from core.kinds.race.records import RaceRecord
from core.kinds.race.spec import RACE_EXAMPLE
from core.settings import Settings
from core.stream import MetricsStream
from tests.conftest import wait_for
from tests.service.test_api import record, store, submit, worker_context
from worker.service import store_records

ACCURACY = {"sgd": [0.5, 0.6], "adam": [0.8, 0.9]}


def fill(
    client: TestClient,
    body: dict[str, Any],
    ctx: Any,
    *,
    offset: float = 0.0,
) -> dict[str, Any]:
    """Submit a job and store made-up epochs for its runs: adam beats sgd in every seed."""
    job = submit(client, body)
    for run in job["runs"]:
        name = run["optimizer"]["name"]
        spread = 0.013 if name == "adam" else 0.01
        noise = run["seed"] * spread + run["batch_size"] / 10_000 + offset
        values = enumerate(ACCURACY[name], start=1)
        store(job, [record(run["id"], epoch, value + noise) for epoch, value in values], ctx)
    return job


def test_a_seeded_job_is_aggregated_per_arm_with_paired_tests(
    client: TestClient,
    test_settings: Settings,
    sessions: sessionmaker[Session],
    stream: MetricsStream,
) -> None:
    ctx = worker_context(test_settings, sessions, stream)
    body = {"optimizers": ["sgd", "adam"], "epochs": [1, 2], "seeds": [0, 1, 2, 3]}
    job = fill(client, body, ctx)
    answer = client.get(f"/jobs/{job['id']}/comparison", params={"target": 0.85}).json()
    assert [a["key"] for a in answer["ranking"]] == [
        "adam bs=32 epochs=2",
        "sgd bs=32 epochs=2",
    ]
    adam, sgd = answer["ranking"]
    assert adam["best"]["n"] == 4 and adam["seeds"] == [0, 1, 2, 3]
    assert adam["best"]["ci_low"] < adam["best"]["mean"] < adam["best"]["ci_high"]
    assert [p["epoch"] for p in adam["curve"]] == [1, 2]
    assert adam["target"]["reached"] == 4 and sgd["target"]["not_reached_seeds"] == [0, 1, 2, 3]
    assert [b["epochs"] for b in adam["budgets"]] == [1]
    [pair] = answer["pairs"]
    assert pair["n"] == 4 and pair["significant"] and pair["p_holm"] == pair["p_value"]
    assert (adam["group"], sgd["group"]) == (1, 2)
    assert "paired t-test" in answer["significance"]
    wilcoxon = client.get(f"/jobs/{job['id']}/comparison?test=wilcoxon").json()
    assert "cannot reach p < 0.05" in wilcoxon["significance"]
    assert not wilcoxon["pairs"][0]["significant"]  # 4 pairs: the smallest p is 0.125


def test_cuts_filters_and_their_errors(
    client: TestClient,
    test_settings: Settings,
    sessions: sessionmaker[Session],
    stream: MetricsStream,
) -> None:
    ctx = worker_context(test_settings, sessions, stream)
    body = {"optimizers": ["sgd", "adam"], "epochs": [1, 2], "batch_size": [32, 128]}
    job = fill(client, body, ctx)
    url = f"/jobs/{job['id']}/comparison"
    cut = client.get(url, params={"cut": ["32x1", "128x2"], "optimizer": "adam"}).json()
    assert [a["key"] for a in cut["ranking"]] == ["adam bs=128 epochs=2", "adam bs=32 epochs=1"]
    budgets = client.get(url, params=[("epochs", 1), ("epochs", 2), ("batch_size", 32)]).json()
    assert sorted(a["key"] for a in budgets["ranking"]) == [
        "adam bs=32 epochs=1",
        "adam bs=32 epochs=2",
        "sgd bs=32 epochs=1",
        "sgd bs=32 epochs=2",
    ]
    both = client.get(url, params={"cut": "32x1", "epochs": 2, "batch_size": 128}).json()
    assert sorted(a["key"] for a in both["ranking"]) == [
        "adam bs=128 epochs=2",
        "adam bs=32 epochs=1",
        "sgd bs=128 epochs=2",
        "sgd bs=32 epochs=1",
    ]
    for params, status, words in [
        ({"cut": "32by1"}, 422, "pattern"),
        ({"batch_size": 64}, 404, "no arm at batch size 64: these runs' batch sizes are 32, 128"),
        ({"epochs": 3}, 404, "no epoch 3: these runs train epochs 1..2"),
        ({"optimizer": "lion"}, 404, "no arm 'lion'"),
        ({"test": "anova"}, 422, "test"),
    ]:
        response = client.get(url, params=params)
        assert response.status_code == status, params
        assert words in str(response.json()), (params, response.json())


def test_runs_of_several_jobs_compare_as_one_and_mixed_setups_are_refused(
    client: TestClient,
    test_settings: Settings,
    sessions: sessionmaker[Session],
    stream: MetricsStream,
) -> None:
    ctx = worker_context(test_settings, sessions, stream)
    first = fill(client, {"optimizers": ["sgd", "adam"], "seeds": [0, 1], "epochs": 2}, ctx)
    second = fill(client, {"optimizers": ["adam"], "seeds": [2, 3], "epochs": 2}, ctx)
    ids = [r["id"] for r in first["runs"] + second["runs"]]
    answer = client.post("/comparisons", json={"run_ids": ids, "metric": "val_accuracy"})
    assert answer.status_code == 200, answer.text
    adam = answer.json()["ranking"][0]
    assert adam["label"] == "adam" and adam["seeds"] == [0, 1, 2, 3]
    assert len(answer.json()["runs"]) == 6

    other_data = fill(
        client,
        {"optimizers": ["adam"], "epochs": 2, "dataset": {"name": "digits", "limit": 500}},
        ctx,
    )
    mixed = client.post("/comparisons", json={"run_ids": [ids[0], other_data["runs"][0]["id"]]})
    assert mixed.status_code == 422 and "differ in dataset" in mixed.json()["detail"]
    again = fill(client, {"optimizers": ["adam"], "seeds": [0], "epochs": 2}, ctx)
    twice = client.post("/comparisons", json={"run_ids": [*ids, again["runs"][0]["id"]]})
    assert twice.status_code == 422 and "the same experiment twice" in twice.json()["detail"]
    missing = client.post("/comparisons", json={"run_ids": [str(uuid.uuid4())]})
    assert missing.status_code == 404 and "no run" in missing.json()["detail"]
    race = submit(client, RACE_EXAMPLE)
    refused = client.post("/comparisons", json={"run_ids": [race["runs"][0]["id"]]})
    assert (
        refused.status_code == 422 and "race jobs are compared within" in refused.json()["detail"]
    )
    mixed_kinds = client.post("/comparisons", json={"run_ids": [ids[0], race["runs"][0]["id"]]})
    assert mixed_kinds.status_code == 422 and "different kinds" in mixed_kinds.json()["detail"]


def test_export_csv_has_one_row_per_run_and_epoch(
    client: TestClient,
    test_settings: Settings,
    sessions: sessionmaker[Session],
    stream: MetricsStream,
) -> None:
    ctx = worker_context(test_settings, sessions, stream)
    job = fill(client, {"optimizers": ["sgd", "adam"], "epochs": 2, "seeds": [0, 1]}, ctx)
    response = client.get(f"/jobs/{job['id']}/export.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 8
    assert {(r["run_id"], r["epoch"]) for r in rows} == {
        (run["id"], str(e)) for run in job["runs"] for e in (1, 2)
    }
    adam = next(r for r in rows if r["optimizer"] == "adam" and r["seed"] == "1")
    assert float(adam["val_accuracy"]) in (0.8162, 0.9162) and adam["label"] == "adam"
    assert list(rows[0])[:11] == [
        "job_id",
        "run_id",
        "run_index",
        "label",
        "optimizer",
        "batch_size",
        "seed",
        "phase",
        "trial",
        "status",
        "time",
    ]
    assert client.get(f"/jobs/{uuid.uuid4()}/export.csv").status_code == 404


def step(run_id: str, n: int, x: float, y: float) -> RaceRecord:
    return RaceRecord(
        run_id=uuid.UUID(run_id),
        step=n,
        x=x,
        y=y,
        f=(1 - x) ** 2 + 100 * (y - x * x) ** 2,
        learning_rate=0.001,
        seconds=0.001,
        time=datetime.now(UTC),
    )


def test_a_race_is_queued_compared_and_drawn(
    client: TestClient,
    test_settings: Settings,
    sessions: sessionmaker[Session],
    stream: MetricsStream,
    redis_client: redis.Redis,
) -> None:
    job = submit(client, RACE_EXAMPLE)
    assert job["kind"] == "race" and job["unit"] == "step" and len(job["runs"]) == 4
    assert {(r["budget"], r["batch_size"], r["seed"]) for r in job["runs"]} == {(500, None, None)}
    wait_for("4 messages", lambda: redis_client.llen(test_settings.task_queue) == 4)
    ctx = worker_context(test_settings, sessions, stream)
    near, far = job["runs"][0]["id"], job["runs"][1]["id"]
    store_records(
        uuid.UUID(job["id"]),
        [step(near, 0, -1.5, 2.0), step(near, 1, 0.5, 0.5), step(near, 2, 0.999, 0.998)],
        ctx,
    )
    store_records(uuid.UUID(job["id"]), [step(far, 0, -1.5, 2.0), step(far, 1, -1.2, 1.5)], ctx)
    answer = client.get(f"/jobs/{job['id']}/comparison").json()
    assert answer["kind"] == "race" and answer["function"] == "rosenbrock"
    assert answer["ranking"][0]["run_id"] == near
    assert answer["ranking"][0]["steps_to_arrive"] == 2
    strict = client.get(f"/jobs/{job['id']}/comparison?tolerance=0.0001").json()
    assert not strict["ranking"][0]["arrived"]

    png = client.get(f"/jobs/{job['id']}/plot.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    svg = client.get(f"/jobs/{job['id']}/plot.svg")
    assert svg.headers["content-type"] == "image/svg+xml" and b"<svg" in svg.content

    items = client.get(f"/jobs/{job['id']}/metrics").json()["items"]
    assert set(items[0]) == {
        "cursor",
        "run_id",
        "time",
        "step",
        "x",
        "y",
        "f",
        "learning_rate",
        "seconds",
    }
    exported = client.get(f"/jobs/{job['id']}/export.csv").text.splitlines()
    assert exported[0].endswith("status,time,step,x,y,f,learning_rate,seconds")
    assert len(exported) == 1 + 5

    bad = client.post("/jobs", json={**RACE_EXAMPLE, "objective": {"function": "sphere"}})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "objective", "function"]
    assert bad.json()["message"].startswith("objective.function: ")


def test_learning_curves_are_drawn_for_any_metric_and_axis(
    client: TestClient,
    test_settings: Settings,
    sessions: sessionmaker[Session],
    stream: MetricsStream,
) -> None:
    ctx = worker_context(test_settings, sessions, stream)
    job = fill(client, {"optimizers": ["sgd", "adam"], "epochs": 2}, ctx)
    for params in ({}, {"metric": "val_accuracy", "x": "seconds"}, {"x": "examples"}):
        response = client.get(f"/jobs/{job['id']}/plot.png", params=params)
        assert response.status_code == 200 and response.content.startswith(b"\x89PNG")
    assert client.get(f"/jobs/{job['id']}/plot.gif").status_code == 422
    assert client.get(f"/jobs/{job['id']}/plot.png?metric=f1").status_code == 422
    assert client.get(f"/jobs/{uuid.uuid4()}/plot.png").status_code == 404


def test_a_regression_is_ranked_by_its_errors_and_reports_its_test_errors(
    client: TestClient,
    test_settings: Settings,
    sessions: sessionmaker[Session],
    stream: MetricsStream,
) -> None:
    from core.kinds.train.records import TrainRecord

    ctx = worker_context(test_settings, sessions, stream)
    body = {
        "dataset": {"name": "synthetic", "task": "regression", "features": 4},
        "optimizers": ["sgd", "adam"],
        "epochs": 2,
        "seeds": [0, 1, 2],
    }
    job = submit(client, body)
    assert job["metrics"][0] == "val_loss" and "val_accuracy" not in job["metrics"]
    for run in job["runs"]:
        base = 0.5 if run["optimizer"]["name"] == "sgd" else 0.2
        base += run["seed"] / 100
        records = [
            TrainRecord(
                run_id=uuid.UUID(run["id"]),
                epoch=epoch,
                loss=base / epoch,
                accuracy=None,
                val_loss=base / epoch,
                val_accuracy=None,
                val_mae=base / epoch / 2,
                learning_rate=0.01,
                epoch_seconds=0.5,
                examples_seen=100 * epoch,
                steps=4 * epoch,
                time=datetime.now(UTC),
                test_loss=base + 0.05 if epoch == 2 else None,
                test_mae=base / 2 + 0.02 if epoch == 2 else None,
            )
            for epoch in (1, 2)
        ]
        store(job, records, ctx)
    answer = client.get(f"/jobs/{job['id']}/comparison").json()
    assert answer["metric"] == "val_loss" and not answer["higher_is_better"]
    assert [a["label"] for a in answer["ranking"]] == ["adam", "sgd"]
    assert answer["test_metric"] == "test_loss" and answer["ranking"][0]["test"]["n"] == 3
    by_mae = client.get(f"/jobs/{job['id']}/comparison?metric=val_mae").json()
    assert by_mae["test_metric"] == "test_mae"
    assert by_mae["ranking"][0]["test"]["mean"] == pytest.approx(0.125)  # mean of base/2+0.02
    wrong = client.get(f"/jobs/{job['id']}/comparison?metric=val_accuracy")
    assert wrong.status_code == 404 and "a regression records val_loss" in wrong.json()["detail"]
    exported = client.get(f"/jobs/{job['id']}/export.csv").text
    assert "val_mae" in exported.splitlines()[0]
