"""Scores across jobs through the API, over stored epochs whose answer is worked by hand."""

import math
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from core.stream import MetricsStream
from tests.conftest import auth
from tests.service.test_api import record, store, submit, worker_context

# Per workload, per arm, per seed: val_accuracy at epochs 1..4.
DIGITS = {
    "adam": {0: [0.5, 0.92, 0.95, 0.96], 1: [0.6, 0.93, 0.94, 0.95]},  # reach 0.9 at epoch 2
    "sgd": {0: [0.3, 0.6, 0.8, 0.91], 1: [0.3, 0.5, 0.7, 0.85]},  # 4 and never: median inf
}
FASHION = {
    "adam": {0: [0.5, 0.6, 0.82, 0.84], 1: [0.5, 0.6, 0.7, 0.81]},  # 0.8 at 3 and 4: 3.5
    "sgd": {0: [0.81, 0.82, 0.83, 0.84], 1: [0.7, 0.8, 0.8, 0.8]},  # 0.8 at 1 and 2: 1.5
}


def finished_job(
    client: TestClient, ctx: Any, sessions: sessionmaker[Session], curves: dict[str, Any]
) -> dict[str, Any]:
    job = submit(client, {"optimizers": ["sgd", "adam"], "epochs": 4, "seeds": [0, 1]})
    for run in job["runs"]:
        values = curves[run["label"]][run["seed"]]
        store(job, [record(run["id"], e, v) for e, v in enumerate(values, start=1)], ctx)
    with sessions.begin() as session:
        session.execute(
            text("UPDATE runs SET status = 'succeeded' WHERE job_id = :j"), {"j": job["id"]}
        )
        session.execute(
            text("UPDATE jobs SET status = 'succeeded' WHERE id = :j"), {"j": job["id"]}
        )
    return job


def test_two_workloads_scored_by_hand(
    client: TestClient,
    test_settings: Settings,
    sessions: sessionmaker[Session],
    stream: MetricsStream,
) -> None:
    ctx = worker_context(test_settings, sessions, stream)
    digits = finished_job(client, ctx, sessions, DIGITS)
    fashion = finished_job(client, ctx, sessions, FASHION)
    query: dict[str, Any] = {
        "job_id": [digits["id"], fashion["id"]],
        "target": [f"{digits['id']}:0.9", f"{fashion['id']}:0.8"],
        "baseline": "adam",
        "time": "epochs",
    }
    answer = client.get("/scores", params=query).json()
    first, second = answer["workloads"]
    times = {a["label"]: a["time"] for a in first["arms"]}
    assert times == {"adam": 2, "sgd": None}  # sgd: median of 4 and never is never
    assert {a["label"]: a["seed_times"] for a in first["arms"]}["sgd"] == [4, None]
    assert {a["label"]: a["ratio"] for a in second["arms"]} == {"adam": 3.5 / 1.5, "sgd": 1.0}
    scores = {a["label"]: a for a in answer["arms"]}
    # adam: ratios 1 and 7/3 -> (3 + (4 - 7/3)) / (2 * 3); sgd: inf and 1 -> (0 + 3) / 6
    assert scores["adam"]["score"] == pytest.approx((3 + 4 - 7 / 3) / 6)
    assert scores["sgd"]["score"] == pytest.approx(0.5)
    assert [a["label"] for a in answer["arms"]] == ["adam", "sgd"]
    assert scores["sgd"]["speedup"] == pytest.approx(3.5 / 1.5)  # where both reached: fashion
    assert scores["sgd"]["speedup_workloads"] == 1
    assert scores["adam"]["workloads"] == 2 and answer["table"]["rows"][0]["arm"] == "adam"
    assert any("2 workload(s)" in w for w in answer["warnings"])

    # auto: the median over adam's seeds of its best value (0.96, 0.95 -> 0.955); only seed 0
    # reaches it (epoch 4, 16 steps), so adam's median time is infinite, and the answer says so
    auto = client.get(
        "/scores", params={"job_id": [digits["id"]], "baseline": "adam", "time": "steps"}
    ).json()
    [workload] = auto["workloads"]
    assert workload["target"] == pytest.approx(0.955)
    assert workload["target_source"].startswith("auto")
    assert {a["label"]: a["seed_times"] for a in workload["arms"]}["adam"] == [16, None]
    assert any("does not reach its own auto target" in w for w in auto["warnings"])
    picture = client.get("/scores/plot.png", params=query)
    assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")


def test_bad_queries_say_why_and_other_owners_jobs_are_unknown(
    client: TestClient,
    test_settings: Settings,
    sessions: sessionmaker[Session],
    stream: MetricsStream,
) -> None:
    ctx = worker_context(test_settings, sessions, stream)
    job = finished_job(client, ctx, sessions, DIGITS)
    running = submit(client, {"optimizers": ["adam"], "epochs": 1})
    race = submit(client, {"objective": {"function": "beale"}, "optimizers": ["sgd"]})

    def refused(params: dict[str, Any], status: int, why: str) -> None:
        response = client.get("/scores", params=params)
        assert response.status_code == status, response.text
        assert why in response.json()["detail"], response.json()

    refused({"job_id": [job["id"]]}, 422, "needs a baseline")
    refused({"job_id": [job["id"]], "baseline": "nadam"}, 422, "has no arm 'nadam'")
    nonsense = client.get("/scores", params={"job_id": [job["id"]], "target": ["nonsense"]})
    assert nonsense.status_code == 422
    assert nonsense.json()["detail"][0]["loc"] == ["query", "target", 0]
    refused({"job_id": [job["id"]], "target": [f"{running['id']}:0.5"]}, 422, "not among job_id")
    refused({"job_id": [running["id"]], "baseline": "adam"}, 409, "score it once it has ended")
    refused({"job_id": [race["id"]], "baseline": "sgd"}, 422, "only jobs that train")
    refused({"job_id": [job["id"]], "metric": "val_mae", "baseline": "adam"}, 422, "records no")
    with TestClient(client.app, headers=auth("other")) as other:
        assert (
            other.get("/scores", params={"job_id": [job["id"]], "baseline": "adam"}).status_code
            == 404
        )
    assert client.get("/scores", params={"job_id": []}).status_code == 422
    assert math.isfinite(
        client.get("/scores", params={"job_id": [job["id"]], "baseline": "adam"}).json()["arms"][0][
            "score"
        ]
    )
