"""Submit -> metrics -> comparison -> cancel, over HTTP, against the real API and worker."""

import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from scipy import stats
from sqlalchemy import create_engine, text

from api.routes.jobs import EXAMPLES
from core.statistics import holm
from core.stream import metrics_key
from tests.conftest import REDIS_URL, wait_for
from tests.e2e.conftest import Service

pytestmark = pytest.mark.e2e

# The worked example the API docs show: proven here to do what they say.
CLASSIC = EXAMPLES["sgd-adam-rmsprop"]["value"]


def poll(
    service: Service, job_id: str, *, limit: int = 7
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Poll with the cursor until the job is done, as a client would."""
    items: list[dict[str, Any]] = []
    cursor = "0"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        page = service.http.get(
            f"/jobs/{job_id}/metrics", params={"after": cursor, "limit": limit}
        ).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if page["done"]:
            return items, page
        if not page["items"]:
            time.sleep(0.2)
    raise AssertionError("metrics never reached done")


def test_sgd_adam_rmsprop_on_digits_polls_to_the_end_and_ranks_adam_above_sgd(
    service: Service,
) -> None:
    job = service.submit(CLASSIC)
    items, last = poll(service, job["id"])
    assert last["status"] == "succeeded"
    seen = Counter((i["run_id"], i["epoch"]) for i in items)
    assert set(seen.values()) == {1}
    assert sorted(seen) == sorted((r["id"], e) for r in job["runs"] for e in range(6))
    assert [int(i["cursor"]) for i in items] == list(range(1, 19))

    done = service.http.get(f"/jobs/{job['id']}").json()
    assert {r["status"] for r in done["runs"]} == {"succeeded"}
    assert len({r["initial_weights_sha256"] for r in done["runs"]}) == 1
    assert done["runs"][0]["environment"]["backend"] == "tensorflow"
    assert done["runs"][0]["summary"]["epochs_completed"] == 5

    ranking = service.http.get(f"/jobs/{job['id']}/comparison").json()["runs"]
    labels = [r["label"] for r in ranking]
    assert labels.index("adam") < labels.index("sgd")

    # The worker's Prometheus series, summed over its pool processes.
    port = service.env["OPTARENA_WORKER_METRICS_PORT"]
    scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
    series = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(scraped)
        for s in family.samples
    }
    assert series[("optarena_worker_epochs_total", ())] >= 15  # 3 runs x 5 epochs, at least
    assert series[("optarena_worker_runs_total", (("outcome", "succeeded"),))] >= 1
    assert series[("optarena_worker_epoch_seconds_count", ())] >= 15
    assert any(name == "optarena_worker_device_info" for name, _ in series)
    adam = ranking[labels.index("adam")]
    assert adam["best"] > 0.9 and adam["final_epoch"] == 5 and adam["seconds"] > 0

    live = redis.Redis.from_url(REDIS_URL)
    key = metrics_key(uuid.UUID(job["id"]))
    wait_for("the live stream to expire (TTL 2 s)", lambda: not live.exists(key))
    again, _ = poll(service, job["id"], limit=1000)  # now Postgres serves the history
    assert again == items


def test_the_same_job_twice_gives_the_same_numbers(service: Service) -> None:
    body = {
        "optimizers": ["sgd", {"name": "adam", "learning_rate": 0.002}],
        "epochs": 2,
        "batch_size": 64,
    }
    curves = []
    for _ in range(2):
        job = service.submit(body)
        items, _ = poll(service, job["id"])
        index = {r["id"]: r["index"] for r in job["runs"]}
        curves.append(
            sorted(
                (
                    index[i["run_id"]],
                    i["epoch"],
                    i["loss"],
                    i["accuracy"],
                    i["val_loss"],
                    i["val_accuracy"],
                )
                for i in items
            )
        )
    assert curves[0] == curves[1]


def test_a_diverging_arm_ends_diverged_and_the_others_finish(service: Service) -> None:
    job = service.submit(
        {"optimizers": [{"name": "sgd", "learning_rate": 1e12}, "adam"], "epochs": 3}
    )
    done = service.wait(job["id"])
    sgd, adam = done["runs"]
    assert sgd["status"] == "diverged" and sgd["diverged_at"] == 1 and "NaN" in sgd["error"]
    assert adam["status"] == "succeeded"
    assert done["status"] == "succeeded"
    ranking = service.http.get(f"/jobs/{job['id']}/comparison").json()["runs"]
    assert ranking[-1]["status"] == "diverged" and ranking[-1]["best"] is None


def test_mnist_offline_fails_the_run_with_the_file_to_place(service: Service) -> None:
    job = service.submit({"optimizers": ["adam"], "dataset": {"name": "mnist"}, "epochs": 1})
    done = service.wait(job["id"])
    [run] = done["runs"]
    assert done["status"] == "failed" and run["status"] == "failed"
    assert "dataset 'mnist' is not in the cache" in run["error"] and "mnist.npz" in run["error"]
    assert "Traceback" not in run["error"]


def test_cancel_stops_the_running_run_within_its_epoch_and_the_queued_ones_at_once(
    service: Service,
) -> None:
    job = service.submit(
        {"optimizers": ["adam", "sgd", "rmsprop"], "epochs": 300, "batch_size": 8, "fuse": False}
    )
    wait_for(
        "training to start",
        lambda: len(service.http.get(f"/jobs/{job['id']}/metrics").json()["items"]) >= 2,
    )
    assert service.http.post(f"/jobs/{job['id']}/cancel").status_code == 202
    done = service.wait(job["id"])
    assert done["status"] == "cancelled"
    running, *queued = done["runs"]
    completed = running["summary"]["epochs_completed"]
    assert running["status"] == "cancelled" and completed < 300
    assert "cancelled while running" in running["error"]
    assert all(r["status"] == "cancelled" and r["started_at"] is None for r in queued)
    # Nothing after the stop: the records are epochs 0..completed of the one run that ran.
    items, last = poll(service, job["id"], limit=1000)
    assert [i["epoch"] for i in items] == list(range(completed + 1)) and last["done"]


def test_three_seeds_of_sgd_adam_rmsprop_are_aggregated_and_tested(service: Service) -> None:
    body = {
        **CLASSIC,
        "name": "three seeds",
        "epochs": [3, 5],
        "seeds": [0, 1, 2],
        "target": {"metric": "val_accuracy", "value": 0.9},
    }
    job = service.wait(service.submit(body)["id"], timeout=300)
    assert job["status"] == "succeeded" and len(job["runs"]) == 9
    # Fair: one set of initial weights per seed, shared by every arm.
    by_seed: dict[int, set[str]] = {}
    for run in job["runs"]:
        by_seed.setdefault(run["seed"], set()).add(run["initial_weights_sha256"])
    assert all(len(hashes) == 1 for hashes in by_seed.values()) and len(by_seed) == 3

    answer = service.http.get(f"/jobs/{job['id']}/comparison").json()
    ranking = {a["label"]: a for a in answer["ranking"]}
    assert set(ranking) == {"sgd", "adam", "rmsprop"}
    adam, sgd = ranking["adam"], ranking["sgd"]
    assert adam["rank"] < sgd["rank"] and adam["seeds"] == [0, 1, 2]
    assert adam["best"]["n"] == 3 and adam["best"]["ci_low"] <= adam["best"]["mean"]
    assert adam["target"]["reached"] == 3 and adam["target"]["steps"]["n"] == 3
    assert sgd["target"]["reached"] == 0 and sgd["target"]["not_reached_seeds"] == [0, 1, 2]
    assert [b["epochs"] for b in adam["budgets"]] == [3]
    assert [p["epoch"] for p in adam["curve"]] == list(range(6))
    assert len(answer["pairs"]) == 3 and "Holm" in answer["significance"]
    adam_sgd = next(p for p in answer["pairs"] if {p["a"], p["b"]} == {adam["key"], sgd["key"]})
    # The test is scipy's paired t-test on the per-seed best values, Holm-corrected. Three
    # seeds are few: whether the gap is significant is the data's answer, not asserted here.
    first, second = (ranking[k.split(" bs=")[0]] for k in (adam_sgd["a"], adam_sgd["b"]))
    expected = stats.ttest_rel(first["best"]["values"], second["best"]["values"])
    assert adam_sgd["p_value"] == pytest.approx(expected.pvalue)
    assert adam_sgd["mean_difference"] == pytest.approx(
        first["best"]["mean"] - second["best"]["mean"]
    )
    raw = [p["p_value"] for p in answer["pairs"]]
    assert [p["p_holm"] for p in answer["pairs"]] == pytest.approx(holm(raw))
    assert adam_sgd["significant"] == (adam["group"] != sgd["group"])

    # The same numbers cut at 3 epochs, and the CSV holds every epoch of every run.
    early = service.http.get(f"/jobs/{job['id']}/comparison", params={"epochs": 3}).json()
    assert {a["epochs"] for a in early["ranking"]} == {3}
    rows = service.http.get(f"/jobs/{job['id']}/export.csv").text.strip().splitlines()
    assert len(rows) == 1 + 9 * 6


def test_a_rosenbrock_race_runs_through_the_service(service: Service) -> None:
    race = EXAMPLES["race"]["value"]
    job = service.wait(service.submit(race)["id"], timeout=120)
    assert job["status"] == "succeeded" and job["kind"] == "race"
    items, last = poll(service, job["id"], limit=500)
    assert len(items) == 4 * 501 and last["done"]
    assert all(i["x"] is not None and i["y"] is not None for i in items)
    answer = service.http.get(f"/jobs/{job['id']}/comparison").json()
    assert answer["kind"] == "race" and answer["points"] == [[1.0, 1.0]]
    ranking = answer["ranking"]
    assert len(ranking) == 4 and all(r["steps"] == 500 for r in ranking)
    assert [r["distance"] for r in ranking] == sorted(r["distance"] for r in ranking)
    # Momentum and Adam travel the valley; plain SGD at this rate is still near the start.
    plain = next(r for r in ranking if r["label"].startswith("sgd"))
    assert plain["rank"] == 4 and plain["distance"] > 2
    png = service.http.get(f"/jobs/{job['id']}/plot.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")


def test_arms_of_a_seed_train_fused_and_give_their_solo_numbers(service: Service) -> None:
    body = {
        "optimizers": ["sgd", {"name": "adam", "learning_rate": 0.002}, "rmsprop"],
        "epochs": 2,
        "batch_size": 64,
        "seeds": [0, 1],
    }
    curves, fused, writes = [], [], []
    for fuse in (True, False):
        job = service.submit(body | {"fuse": fuse})
        items, last = poll(service, job["id"])
        assert last["status"] == "succeeded"
        done = service.http.get(f"/jobs/{job['id']}").json()
        fused.append(sorted(r["summary"]["fused_with"] for r in done["runs"]))
        writes.append(records_a_transaction(service, job["id"]))
        index = {r["id"]: r["index"] for r in job["runs"]}
        curves.append(
            sorted(
                (index[i["run_id"]], i["epoch"], i["loss"], i["val_loss"], i["val_accuracy"])
                for i in items
            )
        )
    # One worker: a seed's three arms in one step (the other seed's, next), or each alone.
    assert fused == [[3] * 6, [1] * 6]
    assert curves[0] == curves[1]  # bitwise on CPU with deterministic ops
    # A fused group's epoch is one write (its arms' records share a transaction); 2 seeds x
    # epochs 0 to 2. Alone, each record is its own.
    assert writes == [[3] * 6, [1] * 18]


def records_a_transaction(service: Service, job_id: str) -> list[int]:
    """How many of the job's records each transaction that wrote them stored."""
    engine = create_engine(service.env["OPTARENA_DATABASE_URL"])
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT count(*) FROM records WHERE job_id = :job"
                    " GROUP BY xmin::text::bigint ORDER BY min(seq)"
                ),
                {"job": job_id},
            )
            return [int(n) for (n,) in rows]
    finally:
        engine.dispose()


def test_cancel_stops_every_arm_of_a_fused_group_within_its_epoch(service: Service) -> None:
    job = service.submit({"optimizers": ["adam", "sgd", "rmsprop"], "epochs": 300, "batch_size": 8})
    wait_for(
        "training to start",
        lambda: len(service.http.get(f"/jobs/{job['id']}/metrics").json()["items"]) >= 6,
    )
    assert service.http.post(f"/jobs/{job['id']}/cancel").status_code == 202
    done = service.wait(job["id"])
    assert done["status"] == "cancelled"
    assert all(r["status"] == "cancelled" and r["summary"]["fused_with"] == 3 for r in done["runs"])
    assert all("cancelled while running" in r["error"] for r in done["runs"])
    items, last = poll(service, job["id"], limit=1000)
    for run in done["runs"]:
        epochs = [i["epoch"] for i in items if i["run_id"] == run["id"]]
        assert epochs == list(range(run["summary"]["epochs_completed"] + 1)) and last["done"]
