"""A soak: a 4-run job while, at random moments and overlapping, training processes are
SIGKILLed, whole workers are SIGKILLed (and replaced), Redis (the broker and the stream) is
restarted and Postgres is cut off. Every run must succeed with epochs 0..N exactly once and
with the numbers of the same job run undisturbed. Bounded: a fixed number of faults."""

import random
import threading
import time
from typing import Any

import pytest

from tests.faults.conftest import TALLY, Rig, wait_for
from tests.faults.test_faults import EPOCHS, JOB, METRICS, TOLERANCE, records, wait_done

pytestmark = pytest.mark.faults

SOAK = {
    **JOB,
    "name": "soak",
    "optimizers": [
        {"name": "adam", "learning_rate": 0.001},
        {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9},
        {"name": "rmsprop", "learning_rate": 0.001},
        {"name": "adam", "label": "adam fast", "learning_rate": 0.003},
    ],
}
FAULTS = 10
SEED = 20261122  # the schedule of faults is random, and the same each time


def by_run(rig: Rig, job_id: str) -> dict[tuple[int, int], dict[str, Any]]:
    assert rig.http is not None
    index = {r["id"]: r["index"] for r in rig.http.get(f"/jobs/{job_id}").json()["runs"]}
    found: dict[tuple[int, int], dict[str, Any]] = {}
    for item in records(rig, job_id):
        key = (index[item["run_id"]], item["epoch"])
        TALLY.duplicates += key in found
        found[key] = item
    return found


class Chaos:
    """Faults at random moments from a seeded schedule, overlapping: a Postgres cut lasts a
    few seconds while the next fault may already strike."""

    def __init__(self, rig: Rig, job_id: str) -> None:
        self.rig, self.job_id = rig, job_id
        self.random = random.Random(SEED)
        self.workers = [rig.worker("soak-1"), rig.worker("soak-2")]
        self.spawned = 2
        self.done: list[str] = []

    def _ended(self) -> bool:
        assert self.rig.http is not None
        return self.rig.http.get(f"/jobs/{self.job_id}").json()["status"] != "running"

    def _kill_training(self) -> str:
        busy = [w for w in self.workers if self.rig.pool_children(w)]
        if not busy:
            return ""
        self.rig.kill_training_process(self.random.choice(busy))
        return "SIGKILL training process"

    def _kill_worker(self) -> str:
        victim = self.workers.pop(self.random.randrange(len(self.workers)))
        self.rig.kill_worker(victim)
        self.spawned += 1
        self.workers.append(self.rig.worker(f"soak-{self.spawned}"))
        return "SIGKILL whole worker"

    def _restart_redis(self) -> str:
        self.rig.redis.crash()
        time.sleep(self.random.uniform(0.5, 2.0))
        self.rig.redis.start()
        return "Redis crash and restart"

    def _cut_postgres(self) -> str:
        self.rig.proxy.cut()
        threading.Timer(self.random.uniform(2.0, 5.0), self.rig.proxy.restore).start()
        return "Postgres cut off"

    def run(self) -> None:
        faults = [self._kill_training, self._kill_worker, self._restart_redis, self._cut_postgres]
        while len(self.done) < FAULTS and not self._ended():
            time.sleep(self.random.uniform(1.0, 4.0))
            what = self.random.choice(faults)()
            if what:
                self.done.append(what)
                TALLY.kill(f"soak: {what}")


def test_every_run_survives_faults_together_with_every_epoch_once_and_its_numbers(
    rig: Rig,
) -> None:
    settings = {"max_attempts": 50, "stale_after_seconds": 6}  # many deaths; quick notice
    rig.api(**settings)
    worker = rig.worker("reference", **settings)
    assert rig.http is not None
    quiet = rig.http.post("/jobs", json=SOAK).json()
    assert wait_done(rig, quiet["id"], timeout=600)["status"] == "succeeded"
    expected = by_run(rig, quiet["id"])
    rig.kill_worker(worker)

    job_id = rig.http.post("/jobs", json=SOAK).json()["id"]
    TALLY.jobs += 2
    chaos = Chaos(rig, job_id)
    wait_for("training to start", lambda: records(rig, job_id), timeout=300)
    chaos.run()
    done = wait_done(rig, job_id, timeout=900)
    assert done["status"] == "succeeded", done
    assert all(r["status"] == "succeeded" for r in done["runs"]), done["runs"]
    found = by_run(rig, job_id)
    wanted = {(i, e) for i in range(4) for e in range(EPOCHS + 1)}
    TALLY.records_checked += len(found)
    TALLY.records_lost += len(wanted - set(found))
    assert set(found) == wanted
    for key, record in found.items():
        for name in METRICS:
            a, b = record[name], expected[key][name]
            difference = abs(a - b) / max(1.0, abs(b))
            TALLY.max_metric_difference = max(TALLY.max_metric_difference, difference)
            assert difference <= TOLERANCE, (key, name, a, b)
    TALLY.soak = {
        "faults": len(chaos.done),
        "attempts": [r["attempt"] for r in done["runs"]],
        "workers_started": chaos.spawned,
    }
    assert len(chaos.done) >= 3, chaos.done  # the soak did disturb the job
