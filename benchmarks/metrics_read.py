"""Metrics polling: the live Redis path against the Postgres path it falls back to, and the
API's cold start. Run: .venv/bin/python benchmarks/metrics_read.py (needs Postgres and Redis).
"""

import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.app import create_app
from core.db import make_engine, make_session_factory
from core.kinds.train.records import TrainRecord
from core.settings import Settings
from core.stream import MetricsStream, make_redis, metrics_key
from tests.conftest import REDIS_URL, add_test_keys, auth, create_database, drop_database, migrate
from worker.service import WorkerContext, store_records

RUNS, EPOCHS, PAGE, REPEATS = 4, 250, 100, 20


def poll_all(client: TestClient, job_id: str) -> list[float]:
    """Milliseconds per page while reading the whole job from cursor 0."""
    timings, cursor = [], "0"
    while True:
        started = time.perf_counter()
        page = client.get(f"/jobs/{job_id}/metrics", params={"after": cursor, "limit": PAGE}).json()
        timings.append((time.perf_counter() - started) * 1000)
        if not page["items"]:
            return timings
        cursor = page["next_cursor"]


def cold_start_seconds() -> float:
    code = "import time; t = time.perf_counter(); import api.app; print(time.perf_counter() - t)"
    runs = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(5)
    ]
    return statistics.median(runs)


def main() -> None:
    name = "optarena_bench"
    url = create_database(name)
    migrate(url)
    add_test_keys(url)
    settings = Settings(
        database_url=url, redis_url=REDIS_URL, task_queue="optarena.bench", rate_limit_per_minute=0
    )
    redis_client = make_redis(REDIS_URL)
    stream = MetricsStream(redis_client, maxlen=100_000, ttl_seconds=600)
    ctx = WorkerContext(
        settings=settings, sessions=make_session_factory(make_engine(url)), stream=stream
    )
    try:
        with TestClient(create_app(settings), headers=auth()) as client:
            job = client.post(
                "/jobs", json={"optimizers": ["sgd", "adam", "rmsprop", "nadam"], "epochs": EPOCHS}
            ).json()
            job_id = uuid.UUID(job["id"])
            for epoch in range(1, EPOCHS + 1):
                for run in job["runs"]:
                    store_records(
                        job_id,
                        [
                            TrainRecord(
                                run_id=uuid.UUID(run["id"]),
                                epoch=epoch,
                                loss=1.0 / epoch,
                                accuracy=0.9,
                                val_loss=1.0,
                                val_accuracy=0.8,
                                learning_rate=0.001,
                                epoch_seconds=0.1,
                                examples_seen=epoch * 1000,
                                steps=epoch * 32,
                                time=datetime.now(UTC),
                            )
                        ],
                        ctx,
                    )
            live = [t for _ in range(REPEATS) for t in poll_all(client, job["id"])]
            redis_client.delete(metrics_key(job_id))
            history = [t for _ in range(REPEATS) for t in poll_all(client, job["id"])]
    finally:
        redis_client.delete("optarena.bench")
        drop_database(name)

    def row(label: str, values: list[float]) -> str:
        q = statistics.quantiles(values, n=100)
        return f"{label:<28}{statistics.median(values):>10.2f}{q[98]:>10.2f}"

    print(f"GET /jobs/{{id}}/metrics, {RUNS * EPOCHS} records, pages of {PAGE}, {REPEATS} passes")
    print(f"{'path':<28}{'median ms':>10}{'p99 ms':>10}")
    print(row("redis stream (live)", live))
    print(row("postgres (baseline)", history))
    print(f"\nAPI cold start (import api.app, median of 5): {cold_start_seconds():.3f} s")


if __name__ == "__main__":
    main()
