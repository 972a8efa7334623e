"""The API against real Postgres and Redis; tasks go to a real broker queue of the tests' own."""

import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from core.records import EpochRecord
from core.settings import Settings
from core.stream import MetricsStream, metrics_key
from tests.conftest import auth
from worker.service import WorkerContext, store_record

CLASSIC = {"optimizers": ["sgd", "adam", "rmsprop"], "batch_size": 32, "epochs": 5}


def submit(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/jobs", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def job_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.execute(text("SELECT count(*) FROM jobs")).scalar_one())


def test_submit_answers_the_job_with_resolved_runs_and_queues_them(
    client: TestClient, redis_client: redis.Redis, test_settings: Settings
) -> None:
    job = submit(client, {**CLASSIC, "batch_size": [32, 128], "seeds": [0, 1]})
    assert job["status"] == "queued" and len(job["runs"]) == 12
    run = job["runs"][0]
    assert {"id", "label", "optimizer", "batch_size", "epochs", "seed", "status"} <= set(run)
    assert run["optimizer"]["learning_rate"] == 0.01 and run["optimizer"]["momentum"] == 0.0
    assert redis_client.llen(test_settings.task_queue) == 12
    assert client.get(f"/jobs/{job['id']}").json()["runs"] == job["runs"]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"optimizers": ["adamm"]}, "optimizers.0", "unknown optimizer 'adamm'"),
        (
            {"optimizers": [{"name": "adam", "gamma": 1}]},
            "optimizers.0",
            "unknown argument 'gamma'",
        ),
        (
            {"optimizers": [{"name": "sgd", "learning_rate": -0.1}]},
            "optimizers.0",
            "learning_rate must be in (0, inf]",
        ),
        ({"optimizers": [{"name": "sgd", "learning_rate": 0}]}, "optimizers.0", "learning_rate"),
        ({"optimizers": ["sgd"], "batch_size": 0}, "batch_size.0", "greater than or equal to 1"),
        ({"optimizers": ["sgd"], "epochs": 1001}, "epochs", "limit of 1000"),
        ({"optimizers": []}, "optimizers", "at least 1 item"),
        ({"optimizers": ["sgd"], "dataset": {"name": "imagenet"}}, "dataset", "'imagenet'"),
        ({"optimizers": ["sgd", "adam"], "seeds": list(range(40))}, "optimizers", "80 runs"),
    ],
)
def test_bad_input_is_422_naming_the_field_and_stores_nothing(
    client: TestClient,
    sessions: sessionmaker[Session],
    body: dict[str, Any],
    field: str,
    words: str,
) -> None:
    response = client.post("/jobs", json=body)
    assert response.status_code == 422
    answer = response.json()
    assert any(
        ".".join(map(str, d["loc"][1:])) == field and words in d["msg"] for d in answer["detail"]
    ), answer
    assert f"{field}: " in answer["message"]
    assert job_count(sessions) == 0


def test_malformed_json_unknown_and_malformed_ids_are_client_errors(client: TestClient) -> None:
    bad = client.post(
        "/jobs", content=b'{"optimizers": [', headers={"content-type": "application/json"}
    )
    assert bad.status_code == 422
    assert client.get(f"/jobs/{uuid.uuid4()}").status_code == 404
    assert client.get(f"/jobs/{uuid.uuid4()}/metrics").status_code == 404
    assert client.get(f"/jobs/{uuid.uuid4()}/comparison").status_code == 404
    assert client.post(f"/jobs/{uuid.uuid4()}/cancel").status_code == 404
    assert client.get("/jobs/not-a-uuid").status_code == 422
    job = submit(client, {"optimizers": ["sgd"]})
    assert client.get(f"/jobs/{job['id']}/metrics?after=abc").status_code == 422
    assert client.get(f"/jobs/{job['id']}/metrics?after=-1").status_code == 422
    assert client.get(f"/jobs/{job['id']}/metrics?after=5").status_code == 422
    assert client.get(f"/jobs/{job['id']}/comparison?metric=f1").status_code == 422


def test_jobs_are_listed_newest_first_and_paginated(client: TestClient) -> None:
    ids = [submit(client, {"optimizers": ["sgd"], "name": f"job {i}"})["id"] for i in range(3)]
    page = client.get("/jobs?limit=2").json()
    assert page["total"] == 3 and [j["id"] for j in page["items"]] == ids[::-1][:2]
    assert [j["id"] for j in client.get("/jobs?limit=2&offset=2").json()["items"]] == [ids[0]]
    assert page["items"][0]["runs_by_status"] == {"queued": 1}


def worker_context(
    test_settings: Settings, sessions: sessionmaker[Session], stream: MetricsStream
) -> WorkerContext:
    return WorkerContext(settings=test_settings, sessions=sessions, stream=stream)


def record(run_id: str, epoch: int, val_accuracy: float) -> EpochRecord:
    return EpochRecord(
        run_id=uuid.UUID(run_id),
        epoch=epoch,
        loss=1 - val_accuracy,
        accuracy=val_accuracy,
        val_loss=1 - val_accuracy,
        val_accuracy=val_accuracy,
        learning_rate=0.01,
        epoch_seconds=0.5,
        examples_seen=100 * epoch,
        time=datetime.now(UTC),
    )


def poll_all(client: TestClient, job_id: str, *, limit: int) -> list[dict[str, Any]]:
    items, cursor = [], "0"
    while True:
        page = client.get(
            f"/jobs/{job_id}/metrics", params={"after": cursor, "limit": limit}
        ).json()
        items += page["items"]
        if not page["items"]:
            return items
        cursor = page["next_cursor"]


def test_polling_with_the_cursor_sees_every_record_once_from_redis_or_postgres(
    client: TestClient,
    test_settings: Settings,
    sessions: sessionmaker[Session],
    stream: MetricsStream,
    redis_client: redis.Redis,
) -> None:
    job = submit(client, {"optimizers": ["sgd", "adam"], "epochs": 3})
    ctx = worker_context(test_settings, sessions, stream)
    for epoch in range(1, 4):
        for run in job["runs"]:
            store_record(uuid.UUID(job["id"]), record(run["id"], epoch, 0.1 * epoch), ctx)
    live = poll_all(client, job["id"], limit=4)
    assert [i["cursor"] for i in live] == [str(n) for n in range(1, 7)]
    key = metrics_key(uuid.UUID(job["id"]))
    redis_client.xdel(key, "3-0")  # a record that never reached the stream
    assert poll_all(client, job["id"], limit=4) == live
    redis_client.delete(key)  # the stream expired
    assert poll_all(client, job["id"], limit=4) == live


def test_concurrent_writers_and_a_poller_never_miss_or_repeat_a_record(
    client: TestClient,
    test_settings: Settings,
    sessions: sessionmaker[Session],
    stream: MetricsStream,
) -> None:
    job = submit(client, {"optimizers": ["sgd", "adam", "rmsprop", "nadam"], "epochs": 25})
    ctx = worker_context(test_settings, sessions, stream)
    seen: list[str] = []

    def write(run_id: str) -> None:
        for epoch in range(1, 26):
            store_record(uuid.UUID(job["id"]), record(run_id, epoch, epoch / 25), ctx)

    writers = [threading.Thread(target=write, args=(run["id"],)) for run in job["runs"]]
    for w in writers:
        w.start()
    cursor = "0"
    while any(w.is_alive() for w in writers) or cursor != "100":
        page = client.get(f"/jobs/{job['id']}/metrics", params={"after": cursor, "limit": 7}).json()
        seen += [f"{i['run_id']}:{i['epoch']}" for i in page["items"]]
        cursor = page["next_cursor"]
    assert len(seen) == 100 and len(set(seen)) == 100


def test_comparison_ranks_stored_runs_and_reports_target(
    client: TestClient,
    test_settings: Settings,
    sessions: sessionmaker[Session],
    stream: MetricsStream,
) -> None:
    job = submit(client, {"optimizers": ["sgd", "adam"], "epochs": [1, 2]})
    sgd, adam = job["runs"]
    ctx = worker_context(test_settings, sessions, stream)
    for rec in [
        record(sgd["id"], 1, 0.3),
        record(sgd["id"], 2, 0.5),
        record(adam["id"], 1, 0.8),
        record(adam["id"], 2, 0.9),
    ]:
        store_record(uuid.UUID(job["id"]), rec, ctx)
    answer = client.get(f"/jobs/{job['id']}/comparison", params={"target": 0.85}).json()
    assert answer["metric"] == "val_accuracy"
    assert [r["label"] for r in answer["runs"]] == ["adam", "sgd"]
    top = answer["runs"][0]
    assert (top["best"], top["best_epoch"], top["final"]) == (0.9, 2, 0.9)
    assert top["target"] == {
        "value": 0.85,
        "reached": True,
        "epochs": 2,
        "steps": 8,  # 100 examples an epoch at batch size 32: 4 steps an epoch
        "seconds": 1.0,
        "examples": 200,
    }
    assert answer["runs"][1]["target"]["reached"] is False
    assert [b["epochs"] for b in top["budgets"]] == [1, 2]
    assert [a["label"] for a in answer["ranking"]] == ["adam", "sgd"]
    assert "one seed: no significance" in answer["significance"]
    losses = client.get(f"/jobs/{job['id']}/comparison?metric=val_loss").json()["runs"]
    assert losses[0]["label"] == "adam" and losses[0]["best"] == pytest.approx(0.1)


def test_cancel_of_a_queued_job_cancels_every_run_at_once(
    client: TestClient, stream: MetricsStream, redis_client: redis.Redis, test_settings: Settings
) -> None:
    job = submit(client, CLASSIC)
    response = client.post(f"/jobs/{job['id']}/cancel")
    assert response.status_code == 202
    cancelled = response.json()
    assert cancelled["status"] == "cancelled" and cancelled["cancel_requested"]
    assert {r["status"] for r in cancelled["runs"]} == {"cancelled"}
    assert stream.cancel_requested(uuid.UUID(job["id"]))
    flag_ttl = redis_client.ttl(f"jobs:{job['id']}:cancel")
    assert 0 < flag_ttl <= test_settings.stream_ttl_seconds  # the job ended: its keys expire
    assert client.post(f"/jobs/{job['id']}/cancel").status_code == 409


def test_an_unreachable_broker_is_503_and_the_runs_say_why(
    test_settings: Settings, db_engine: object, redis_client: object
) -> None:
    settings = test_settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(settings), headers=auth()) as client:
        response = client.post("/jobs", json={"optimizers": ["sgd"]})
        assert response.status_code == 503 and "submit it again" in response.json()["detail"]
        [job] = client.get("/jobs").json()["items"]
        detail = client.get(f"/jobs/{job['id']}").json()
        assert detail["status"] == "failed" and "could not be queued" in detail["runs"][0]["error"]


def test_health_readiness_and_docs(
    client: TestClient, test_settings: Settings, db_engine: object
) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "checks": {}}
    assert client.get("/readyz").json()["checks"] == {"postgres": "ok", "redis": "ok"}
    schema = client.get("/openapi.json").json()
    examples = schema["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"][
        "examples"
    ]
    assert "sgd-adam-rmsprop" in examples
    assert client.get("/docs").status_code == 200
    down = test_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(down)) as unready:
        answer = unready.get("/readyz")
        assert answer.status_code == 503 and answer.json()["checks"]["redis"].startswith(
            "unreachable"
        )
