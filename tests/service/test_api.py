"""The API against real Postgres and Redis; messages go through the outbox to a real broker
queue of the tests' own."""

import json
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
from core.kinds.train.records import TrainRecord
from core.settings import Settings
from core.stream import MetricsStream, metrics_key
from tests.conftest import auth, wait_for
from worker.service import WorkerContext, store_records

CLASSIC = {"optimizers": ["sgd", "adam", "rmsprop"], "batch_size": 32, "epochs": 5}


def submit(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/jobs", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def count(sessions: sessionmaker[Session], sql: str) -> int:
    with sessions() as session:
        return int(session.execute(text(sql)).scalar_one())


def test_submit_answers_the_job_with_resolved_runs_and_sends_them_to_the_broker(
    client: TestClient, redis_client: redis.Redis, test_settings: Settings
) -> None:
    job = submit(client, {**CLASSIC, "batch_size": [32, 128], "seeds": [0, 1]})
    assert job["status"] == "queued" and job["kind"] == "train" and job["unit"] == "epoch"
    assert len(job["runs"]) == 12
    run = job["runs"][0]
    assert {"id", "label", "optimizer", "batch_size", "budget", "seed", "status"} <= set(run)
    assert run["optimizer"]["learning_rate"] == 0.01 and run["optimizer"]["momentum"] == 0.0
    wait_for("12 messages", lambda: redis_client.llen(test_settings.task_queue) == 12)
    # the answer is built from what the submission wrote: it is what a read finds stored
    assert client.get(f"/jobs/{job['id']}").json() == job


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"optimizers": ["adamm"]}, "optimizers.0", "unknown optimizer 'adamm'"),
        (
            {"optimizers": [{"name": "adam", "gamma": 1}]},
            "optimizers.0",
            "unknown argument 'gamma' for optimizer 'adam'",
        ),
        (
            {"optimizers": [{"name": "sgd", "learning_rate": -0.1}]},
            "optimizers.0.learning_rate",
            "greater than 0",
        ),
        (
            {"optimizers": [{"name": "sgd", "learning_rate": {"schedule": "cosine"}}]},
            "optimizers.0.learning_rate.decay_steps",
            "Field required",
        ),
        ({"optimizers": ["sgd"], "batch_size": 0}, "batch_size.0", "greater than or equal to 1"),
        ({"optimizers": ["sgd"], "epochs": 1001}, "epochs.0", "limit of 1000"),
        ({"optimizers": []}, "optimizers", "at least 1 item"),
        ({"optimizers": ["sgd"], "dataset": {"name": "imagenet"}}, "dataset.name", "'cifar10'"),
        (
            {"optimizers": ["sgd"], "dataset": {"name": "digits", "limit": 5}},
            "dataset.limit",
            "greater than or equal to 10",
        ),
        ({"optimizers": ["sgd", "adam"], "seeds": list(range(40))}, "optimizers", "80 runs"),
        ({"optimizers": ["sgd"], "kind": "tuning"}, "body", "kind must be one of"),
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
    where = [".".join(map(str, d["loc"][1:])) or d["loc"][0] for d in answer["detail"]]
    assert any(
        w == field and words in d["msg"] for w, d in zip(where, answer["detail"], strict=True)
    ), answer
    assert f"{field}: " in answer["message"]
    assert count(sessions, "SELECT count(*) FROM jobs") == 0
    assert count(sessions, "SELECT count(*) FROM outbox") == 0


def test_malformed_json_unknown_and_malformed_ids_are_client_errors(client: TestClient) -> None:
    bad = client.post(
        "/jobs", content=b'{"optimizers": [', headers={"content-type": "application/json"}
    )
    assert bad.status_code == 422
    for path in ("", "/metrics", "/comparison", "/export.csv", "/plot.png"):
        missing = client.get(f"/jobs/{uuid.uuid4()}{path}")
        assert missing.status_code == 404 and "no job" in missing.json()["detail"]
    assert client.post(f"/jobs/{uuid.uuid4()}/cancel").status_code == 404
    assert client.get("/jobs/not-a-uuid").status_code == 422
    job = submit(client, {"optimizers": ["sgd"]})
    assert client.get(f"/jobs/{job['id']}/metrics?after=abc").status_code == 422
    assert client.get(f"/jobs/{job['id']}/metrics?after=-1").status_code == 422
    ahead = client.get(f"/jobs/{job['id']}/metrics?after=5")
    assert ahead.status_code == 409 and "beyond this job's last record" in ahead.json()["detail"]
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


def record(run_id: str, epoch: int, val_accuracy: float) -> TrainRecord:
    return TrainRecord(
        run_id=uuid.UUID(run_id),
        epoch=epoch,
        loss=1 - val_accuracy,
        accuracy=val_accuracy,
        val_loss=1 - val_accuracy,
        val_accuracy=val_accuracy,
        learning_rate=0.01,
        epoch_seconds=0.5,
        examples_seen=100 * epoch,
        steps=4 * epoch,  # 100 examples an epoch at batch size 32
        time=datetime.now(UTC),
    )


def store(job: dict[str, Any], records: list[TrainRecord], ctx: WorkerContext) -> None:
    for one in records:
        store_records(uuid.UUID(job["id"]), [one], ctx)


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
    store(job, [record(r["id"], e, 0.1 * e) for e in range(1, 4) for r in job["runs"]], ctx)
    live = poll_all(client, job["id"], limit=4)
    assert [i["cursor"] for i in live] == [str(n) for n in range(1, 7)]
    assert set(live[0]) == {"cursor", *TrainRecord.model_fields}
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
        store(job, [record(run_id, epoch, epoch / 25) for epoch in range(1, 26)], ctx)

    writers = [threading.Thread(target=write, args=(run["id"],)) for run in job["runs"]]
    for w in writers:
        w.start()
    cursor = "0"
    while any(w.is_alive() for w in writers) or cursor != "100":
        page = client.get(f"/jobs/{job['id']}/metrics", params={"after": cursor, "limit": 7}).json()
        seen += [f"{i['run_id']}:{i['epoch']}" for i in page["items"]]
        cursor = page["next_cursor"]
    assert len(seen) == 100 and len(set(seen)) == 100


def test_the_history_as_json_lines_equals_the_pages_and_resumes_at_its_cursor(
    client: TestClient,
    test_settings: Settings,
    sessions: sessionmaker[Session],
    stream: MetricsStream,
) -> None:
    job = submit(client, {"optimizers": ["sgd", "adam"], "epochs": 3})
    ctx = worker_context(test_settings, sessions, stream)
    store(job, [record(r["id"], e, 0.1 * e) for e in range(1, 4) for r in job["runs"]], ctx)
    pages = poll_all(client, job["id"], limit=1000)
    url = f"/jobs/{job['id']}/metrics.ndjson"
    whole = client.get(url)
    assert whole.status_code == 200 and whole.headers["content-type"] == "application/x-ndjson"
    assert [json.loads(line) for line in whole.text.splitlines()] == pages
    assert whole.headers["optarena-next-cursor"] == "6"
    assert whole.headers["optarena-done"] == "false"  # the job has not ended
    lines, cursor = [], "0"
    while True:  # four at a time, as a client resumes
        part = client.get(url, params={"after": cursor, "limit": 4})
        if not part.text:
            break
        lines += [json.loads(line) for line in part.text.splitlines()]
        cursor = part.headers["optarena-next-cursor"]
    assert lines == pages and cursor == "6"
    assert client.get(url, params={"after": 7}).status_code == 409


def test_comparison_ranks_stored_runs_and_reports_target(
    client: TestClient,
    test_settings: Settings,
    sessions: sessionmaker[Session],
    stream: MetricsStream,
) -> None:
    job = submit(client, {"optimizers": ["sgd", "adam"], "epochs": [1, 2]})
    sgd, adam = job["runs"]
    ctx = worker_context(test_settings, sessions, stream)
    store(
        job,
        [
            record(sgd["id"], 1, 0.3),
            record(sgd["id"], 2, 0.5),
            record(adam["id"], 1, 0.8),
            record(adam["id"], 2, 0.9),
        ],
        ctx,
    )
    answer = client.get(f"/jobs/{job['id']}/comparison", params={"target": 0.85}).json()
    assert answer["kind"] == "train" and answer["metric"] == "val_accuracy"
    assert [r["label"] for r in answer["runs"]] == ["adam", "sgd"]
    top = answer["runs"][0]
    assert (top["best"], top["best_epoch"], top["final"]) == (0.9, 2, 0.9)
    assert top["target"] == {
        "value": 0.85,
        "reached": True,
        "epochs": 2,
        "steps": 8,
        "seconds": 1.0,
        "examples": 200,
        "trained_epochs": 2,
        "trained_steps": 8,
        "trained_seconds": 1.0,
        "eval_seconds": 0.0,
    }
    missed = answer["runs"][1]["target"]
    assert missed["reached"] is False and missed["epochs"] is None
    assert missed["trained_epochs"] == 2  # censored there: longer than 2 epochs, not never
    arms = {a["label"]: a["target"] for a in answer["ranking"]}
    assert arms["adam"]["estimate"]["epochs"]["median"] == 2
    assert arms["sgd"]["estimate"]["epochs"]["median"] is None
    assert answer["target_pairs"][0]["time"] == "epochs"
    assert [b["epochs"] for b in top["budgets"]] == [1, 2]
    assert [a["label"] for a in answer["ranking"]] == ["adam", "sgd"]
    assert "one seed: no significance" in answer["significance"]
    assert [row["arm"] for row in answer["table"]["rows"]] == [
        "adam bs=32 epochs=2",
        "sgd bs=32 epochs=2",
    ]
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
    again = client.post(f"/jobs/{job['id']}/cancel")
    assert again.status_code == 409 and "already ended" in again.json()["detail"]


def test_with_the_broker_down_a_job_is_accepted_and_its_messages_wait_in_the_outbox(
    test_settings: Settings,
    db_engine: object,
    redis_client: redis.Redis,
    sessions: sessionmaker[Session],
) -> None:
    down = test_settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(down), headers=auth()) as client:
        job = submit(client, {"optimizers": ["sgd", "adam"]})
        assert job["status"] == "queued"
        wait_for(
            "the relay to try and fail",
            lambda: count(sessions, "SELECT count(*) FROM outbox WHERE attempts > 0") == 2,
        )
        assert count(sessions, "SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 2
    assert redis_client.llen(test_settings.task_queue) == 0
    # The broker is back (an API with a working one): every waiting message goes, once.
    with TestClient(create_app(test_settings), headers=auth()) as client:
        wait_for(
            "the messages to be sent",
            lambda: count(sessions, "SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0,
            timeout=120,  # backed off after the failures: at most a minute
        )
        assert client.get(f"/jobs/{job['id']}").json()["status"] == "queued"
    assert redis_client.llen(test_settings.task_queue) == 2


def test_health_readiness_and_docs(
    client: TestClient, test_settings: Settings, db_engine: object
) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "checks": {}}
    assert client.get("/readyz").json()["checks"] == {"postgres": "ok", "redis": "ok"}
    schema = client.get("/openapi.json").json()
    examples = schema["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"][
        "examples"
    ]
    assert {"sgd-adam-rmsprop", "race", "keras2"} <= set(examples)
    assert client.get("/docs").status_code == 200
    down = test_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(down)) as unready:
        answer = unready.get("/readyz")
        assert answer.status_code == 503 and answer.json()["checks"]["redis"].startswith(
            "unreachable"
        )
