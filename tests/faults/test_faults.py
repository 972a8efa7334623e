"""Faults, for real: training processes and whole workers killed, a SIGTERM deploy, Redis
crashed and restarted, Postgres cut off. Every job must end with every epoch record exactly
once, and with the metrics of the uninterrupted run of the same job."""

import os
import signal
import threading
from typing import Any

import httpx
import pytest
from optarena_client import Client, Event

from tests.conftest import S3Server
from tests.faults.conftest import KEYS, TALLY, Rig, wait_for

pytestmark = pytest.mark.faults

EPOCHS = 6
# Batches of 2: an epoch is long enough for the records to be read while it trains.
JOB = {
    "name": "fault",
    "dataset": {"name": "digits"},
    "model": {"preset": "mlp", "hidden_units": [256, 256], "dropout": 0.2},
    "optimizers": [{"name": "adam", "learning_rate": 0.001}],
    "batch_size": 2,
    "epochs": EPOCHS,
    "seeds": [0],
}
# Resumed training is bitwise identical on one machine (deterministic ops); the guarantee
# stated in the README is agreement within this relative tolerance.
TOLERANCE = 1e-6
METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")

_reference: dict[int, dict[str, Any]] = {}


def records(rig: Rig, job_id: str) -> list[dict[str, Any]]:
    """Every record of the job, polled page by page as a client would."""
    assert rig.http is not None
    items: list[dict[str, Any]] = []
    cursor = "0"
    while True:
        page = rig.http.get(f"/jobs/{job_id}/metrics", params={"after": cursor, "limit": 3})
        assert page.status_code == 200, page.text
        body = page.json()
        items += body["items"]
        if not body["items"]:
            return items
        cursor = body["next_cursor"]


def submit(rig: Rig) -> dict[str, Any]:
    assert rig.http is not None
    response = rig.http.post("/jobs", json=JOB)
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    TALLY.jobs += 1
    return job


def job(rig: Rig, job_id: str) -> dict[str, Any]:
    assert rig.http is not None
    answer: dict[str, Any] = rig.http.get(f"/jobs/{job_id}").json()
    return answer


def wait_done(rig: Rig, job_id: str, *, timeout: float = 180) -> dict[str, Any]:
    try:
        return wait_for(  # type: ignore[no-any-return]
            f"job {job_id} to end",
            lambda: (j := job(rig, job_id))["status"] in ("succeeded", "failed", "cancelled") and j,
            timeout=timeout,
            every=0.2,
        )
    except AssertionError:
        logs = "\n".join(f"--- {n}\n{rig.log(n)[-3000:]}" for n in ("worker", "worker2", "api"))
        raise AssertionError(f"job {job_id} did not end; logs:\n{logs}") from None


def stored_epochs(rig: Rig, job_id: str) -> int:
    return len([r for r in records(rig, job_id) if r["epoch"] >= 1])


def training_after(rig: Rig, job_id: str, n: int, *, attempt: int) -> bool:
    """Whether the job's one run is in `attempt` with n epochs stored and more to train."""
    run = job(rig, job_id)["runs"][0]
    epochs = stored_epochs(rig, job_id)
    return run["status"] == "running" and run["attempt"] == attempt and n <= epochs < EPOCHS


def reference(rig: Rig) -> dict[int, dict[str, Any]]:
    """The uninterrupted run of JOB, by epoch (run once per test session)."""
    if not _reference:
        worker = rig.worker("reference")
        done = wait_done(rig, submit(rig)["id"])
        assert done["status"] == "succeeded", done
        _reference.update({r["epoch"]: r for r in records(rig, done["id"])})
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    return _reference


def check_exact(rig: Rig, job_id: str, expected: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Epochs 0..N once each, and the uninterrupted run's numbers; tallied for the note."""
    done = job(rig, job_id)
    seen = [r["epoch"] for r in records(rig, job_id)]
    lost = sorted(set(range(EPOCHS + 1)) - set(seen))
    duplicates = len(seen) - len(set(seen))
    TALLY.records_checked += len(seen)
    TALLY.records_lost += len(lost)
    TALLY.duplicates += duplicates
    assert not lost and not duplicates, (seen, lost)
    assert seen == list(range(EPOCHS + 1))
    for record in records(rig, job_id):
        want = expected[record["epoch"]]
        for name in METRICS:
            a, b = record[name], want[name]
            difference = abs(a - b) / max(1.0, abs(b))
            TALLY.max_metric_difference = max(TALLY.max_metric_difference, difference)
            assert difference <= TOLERANCE, (record["epoch"], name, a, b)
    [run] = done["runs"]
    final = run["summary"]["final"]
    for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert abs(final[name] - expected[EPOCHS][name]) <= TOLERANCE * max(1, abs(final[name]))
    return run  # type: ignore[no-any-return]


def test_the_training_process_killed_mid_epoch_resumes_from_its_last_epoch(rig: Rig) -> None:
    rig.api()
    expected = reference(rig)
    worker = rig.worker()
    job_id = submit(rig)["id"]
    for kill, after_epochs in enumerate((2, 4), start=1):
        rig.kill_when(
            worker,
            f"attempt {kill} training after epoch {after_epochs}",
            lambda k=kill, n=after_epochs: training_after(rig, job_id, n, attempt=k),
        )
        TALLY.kill("SIGKILL training process mid-epoch")
        # Celery sees its pool process die and delivers the run again at once.
        wait_for(
            "the redelivered run",
            lambda k=kill: job(rig, job_id)["runs"][0]["attempt"] == k + 1,
            timeout=300,
        )
    done = wait_done(rig, job_id)
    assert done["status"] == "succeeded", done
    run = check_exact(rig, job_id, expected)
    # Epoch 4's record was seen, so epoch 3 had been checkpointed (an epoch starts after the
    # last one's checkpoint): the resumption was from 3 or later, wherever the kill landed.
    assert run["attempt"] == 3 and run["summary"]["resumed_from_epoch"] >= 3


def test_a_run_resumes_from_its_checkpoint_in_an_s3_store(rig: Rig, s3_server: S3Server) -> None:
    bucket = s3_server.bucket()
    rig.store_env = s3_server.env(bucket)
    rig.api()
    expected = reference(rig)
    worker = rig.worker()
    job_id = submit(rig)["id"]
    rig.kill_when(
        worker, "training after epoch 2", lambda: training_after(rig, job_id, 2, attempt=1)
    )
    TALLY.kill("SIGKILL training process, checkpoints in S3")
    wait_for("the redelivered run", lambda: job(rig, job_id)["runs"][0]["attempt"] == 2)
    done = wait_done(rig, job_id)
    assert done["status"] == "succeeded", done
    run = check_exact(rig, job_id, expected)
    assert run["attempt"] == 2 and run["summary"]["resumed_from_epoch"] >= 1
    # The bucket holds the trained model, and the checkpoint is gone with the run's end.
    assert rig.http is not None
    model = rig.http.get(f"/runs/{run['id']}/model.keras")
    assert model.status_code == 200 and model.content[:2] == b"PK"
    assert len(model.content) == run["summary"]["model_bytes"]
    keys = httpx.get(f"{s3_server.url}/{bucket}", params={"list-type": "2"}).text
    assert f"artifacts/runs/{run['id']}/model.keras" in keys and "checkpoints/" not in keys


def test_a_dead_worker_is_noticed_by_its_heartbeat_and_its_run_resumed_elsewhere(
    rig: Rig,
) -> None:
    rig.api()
    expected = reference(rig)
    first = rig.worker()
    job_id = submit(rig)["id"]
    # Main process and pool: nobody is left to redeliver the task.
    rig.kill_when(
        first,
        "training after epoch 2",
        lambda: training_after(rig, job_id, 2, attempt=1),
        whole_worker=True,
    )
    TALLY.kill("SIGKILL whole worker")
    rig.worker("worker2")
    done = wait_done(rig, job_id)
    assert done["status"] == "succeeded", done
    run = check_exact(rig, job_id, expected)
    assert run["attempt"] == 2 and run["summary"]["resumed_from_epoch"] >= 1
    assert "re-queued" in rig.log("api") or run["attempt"] == 2


def test_a_run_that_kills_its_worker_every_time_fails_after_max_attempts(rig: Rig) -> None:
    rig.api()
    worker = rig.worker(max_attempts=3)
    job_id = submit(rig)["id"]
    for attempt in (1, 2, 3):
        rig.kill_when(
            worker,
            f"attempt {attempt} running",
            lambda a=attempt: (
                (r := job(rig, job_id)["runs"][0])["status"] == "running" and r["attempt"] == a
            ),
        )
        TALLY.kill("SIGKILL training process, every attempt")
    done = wait_done(rig, job_id, timeout=300)
    [run] = done["runs"]
    assert done["status"] == "failed" and run["status"] == "failed"
    assert "died during each of 3 attempts" in run["error"], run["error"]
    # The verdict comes from the reaper (3 stale attempts) or from a fourth delivery.
    assert run["attempt"] in (3, 4)


def test_sigterm_hands_the_run_back_after_the_epoch_and_the_next_worker_resumes(
    rig: Rig,
) -> None:
    rig.api()
    expected = reference(rig)
    first = rig.worker()
    job_id = submit(rig)["id"]
    # What `docker compose stop` sends, while the run has epochs left (the test holds
    # wherever in the epoch the signal lands).
    rig.while_stopped(
        first,
        "training after epoch 2",
        lambda: training_after(rig, job_id, 2, attempt=1),
        lambda child: first.send_signal(signal.SIGTERM),
    )
    TALLY.kill("SIGTERM worker (deploy)")
    first.wait(timeout=300)
    [run] = job(rig, job_id)["runs"]
    assert run["status"] == "queued" and run["handbacks"] == 1, (run, rig.log("worker")[-3000:])
    stored = [r["epoch"] for r in records(rig, job_id)]
    assert stored == list(range(len(stored))) and 3 <= len(stored) <= EPOCHS, stored
    rig.worker("worker2")
    done = wait_done(rig, job_id)
    assert done["status"] == "succeeded", done
    run = check_exact(rig, job_id, expected)
    assert run["attempt"] == 2 and run["handbacks"] == 1


def _collect(rig: Rig, job_id: str, into: list[Event]) -> None:
    with Client(rig.api_url, api_key=KEYS["tester"][1]) as client:
        into.extend(client.events(job_id, retry_seconds=0.2, max_retries=100))


def test_redis_crashing_mid_job_loses_nothing_and_the_stream_has_no_gap(rig: Rig) -> None:
    rig.api()
    expected = reference(rig)
    worker = rig.worker()
    job_id = submit(rig)["id"]
    events: list[Event] = []
    watcher = threading.Thread(target=_collect, args=(rig, job_id, events), daemon=True)
    watcher.start()
    crashed_at: list[int] = []

    def crash(child: int) -> None:
        crashed_at.append(stored_epochs(rig, job_id))
        rig.redis.crash()

    rig.while_stopped(
        worker, "training after epoch 2", lambda: training_after(rig, job_id, 2, attempt=1), crash
    )
    TALLY.kill("Redis crash and restart")
    # Training goes on: an epoch ends (into Postgres) while Redis is down.
    wait_for(
        "an epoch stored while Redis is down",
        lambda: stored_epochs(rig, job_id) > crashed_at[0],
        timeout=300,
    )
    rig.redis.start()
    done = wait_done(rig, job_id)
    watcher.join(timeout=30)
    assert done["status"] == "succeeded", done
    check_exact(rig, job_id, expected)
    streamed = [int(e.data["epoch"]) for e in events if e.event == "record"]
    TALLY.duplicates += len(streamed) - len(set(streamed))
    TALLY.records_lost += len(set(range(EPOCHS + 1)) - set(streamed))
    assert streamed == list(range(EPOCHS + 1)), streamed
    assert events[-1].event == "done"


def test_postgres_cut_off_mid_job_delays_the_epoch_and_loses_none(rig: Rig) -> None:
    rig.api(stale_after_seconds=60)
    expected = reference(rig)
    # The outage is shorter than a worker's presumed death.
    worker = rig.worker(stale_after_seconds=60)
    job_id = submit(rig)["id"]
    rig.while_stopped(
        worker,
        "training after epoch 2",
        lambda: training_after(rig, job_id, 2, attempt=1),
        lambda child: rig.proxy.cut(),
    )
    TALLY.kill("Postgres unreachable until a write has been retried")
    # The cut lasts until the worker has met it: a record write retried.
    wait_for("a write to meet the outage", lambda: "Postgres unreachable" in rig.log("worker"))
    rig.proxy.restore()
    done = wait_done(rig, job_id)
    assert done["status"] == "succeeded", done
    run = check_exact(rig, job_id, expected)
    assert run["attempt"] == 1, "the outage must not look like a dead worker"
    assert "Postgres unreachable" in rig.log("worker")


def test_the_rig_never_touches_the_shared_services(rig: Rig) -> None:
    assert rig.redis.port != 6379 and rig.proxy.port != 5432
    assert os.environ.get("OPTARENA_REDIS_URL", "") != rig.redis.url


def test_an_api_killed_between_commit_and_send_loses_no_run(rig: Rig) -> None:
    rig.api()
    expected = reference(rig)
    rig.kill_api()
    # An API that commits and never sends: killed then, it is killed between the two.
    rig.api(outbox_relay_seconds=0)
    job_id = submit(rig)["id"]
    assert rig.queued_messages() == 0
    assert rig.sql("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 1
    rig.kill_api()
    TALLY.kill("SIGKILL API between commit and send")
    rig.worker()
    rig.api()  # its relay finds the message the dead one left, and sends it
    done = wait_done(rig, job_id)
    assert done["status"] == "succeeded", done
    run = check_exact(rig, job_id, expected)
    assert run["attempt"] == 1 and rig.sql("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0


def test_a_job_submitted_while_the_broker_is_down_starts_once_it_is_back(rig: Rig) -> None:
    rig.api()
    expected = reference(rig)
    rig.worker()
    rig.redis.crash()
    TALLY.kill("broker (Redis) down during submit")
    job_id = submit(rig)["id"]  # accepted: the job and its message are in Postgres
    assert job(rig, job_id)["status"] == "queued"
    wait_for(
        "the relay to find the broker down",
        lambda: rig.sql("SELECT count(*) FROM outbox WHERE attempts > 0 AND sent_at IS NULL"),
        timeout=120,
    )
    rig.redis.start()
    done = wait_done(rig, job_id)
    assert done["status"] == "succeeded", done
    run = check_exact(rig, job_id, expected)
    assert run["attempt"] == 1, "started once"
