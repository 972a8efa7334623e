"""A job's history through optarena's API beside the same history through an MLflow tracking
server, on one machine in one run, both over HTTP and both on Postgres:

- write a 64-run x 1000-epoch history (4 metrics an epoch: 256,000 points), 250 epochs a call
  (optarena: the worker's store_records; MLflow: log_batch);
- write one epoch record as training does (median latency), and 8 concurrent writers into one
  job (records a second, each record its own call; the cursor checked gap-free after);
- read the whole history back: optarena's JSON pages (10,000 a page), its JSON lines
  (`metrics.ndjson`, one request), MLflow's get_metric_history per run and metric.

MLflow lives in a virtual environment of the benchmark's own (.data/venv-mlflow, made on first
use from the package registry); it is no dependency of the project.
Run: .venv/bin/python benchmarks/history.py (Postgres and Redis as for the tests)."""

import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import speed_noted  # noqa: E402
from core.db import make_engine, make_session_factory  # noqa: E402
from core.kinds.train.records import TrainRecord  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.stream import MetricsStream, make_redis  # noqa: E402
from tests.conftest import (  # noqa: E402
    REDIS_URL,
    add_test_keys,
    auth,
    create_database,
    drop_database,
    migrate,
    wait_for,
)
from tests.e2e.conftest import free_port  # noqa: E402
from tests.mlflow_server import VENV, mlflow_python  # noqa: E402
from worker.service import WorkerContext, store_records  # noqa: E402

RUNS, EPOCHS, CHUNK = 64, 1000, 250
SINGLES, WRITERS, PER_WRITER = 200, 8, 250


def record(run_id: uuid.UUID, epoch: int) -> TrainRecord:
    return TrainRecord(
        run_id=run_id,
        epoch=epoch,
        loss=1.0 / (epoch + 1),
        accuracy=1.0 - 1.0 / (epoch + 2),
        val_loss=1.0 / (epoch + 1) + 0.01,
        val_accuracy=1.0 - 1.0 / (epoch + 3),
        learning_rate=0.001,
        epoch_seconds=0.1,
        examples_seen=1000 * epoch,
        steps=32 * epoch,
        time=datetime.now(UTC),
    )


def serve(command: list[str], env: dict[str, str], url: str, log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )

    def up() -> bool:
        try:
            return httpx.get(url, timeout=5).status_code < 500
        except httpx.TransportError:
            return False

    wait_for(f"{command[0]} at {url}", up, timeout=120, every=0.5)
    return process


def optarena(logs: Path) -> dict[str, float]:
    url = create_database("optarena_bench_history")
    migrate(url)
    add_test_keys(url)
    port = free_port()
    env = {
        **os.environ,
        "OPTARENA_DATABASE_URL": url,
        "OPTARENA_REDIS_URL": REDIS_URL,
        "OPTARENA_TASK_QUEUE": "optarena.bench",
        "OPTARENA_API_PORT": str(port),
        "OPTARENA_RATE_LIMIT_PER_MINUTE": "0",
        "OPTARENA_MAX_ACTIVE_RUNS_PER_OWNER": "100000",
    }
    base = f"http://127.0.0.1:{port}"
    api = serve([sys.executable, "-m", "api"], env, f"{base}/healthz", logs / "api.log")
    settings = Settings(database_url=url, redis_url=REDIS_URL, stream_maxlen=300_000)
    ctx = WorkerContext(
        settings=settings,
        sessions=make_session_factory(make_engine(url)),
        stream=MetricsStream(make_redis(REDIS_URL), maxlen=300_000, ttl_seconds=600),
    )
    found: dict[str, float] = {}
    try:
        http = httpx.Client(base_url=base, headers=auth(), timeout=300)
        body = {
            "optimizers": ["sgd", "adam", "rmsprop", "nadam"],
            "seeds": list(range(16)),
            "epochs": EPOCHS,
        }
        # One epoch a call first, into a store not yet loaded (as on MLflow's side): right
        # after a bulk load Postgres's autovacuum would be measured with it.
        single_job = http.post("/jobs", json=body | {"seeds": [0, 1, 2]}).json()
        single_id = uuid.UUID(single_job["id"])
        spare = uuid.UUID(single_job["runs"][0]["id"])
        single = []
        for epoch in range(SINGLES):
            started = time.perf_counter()
            store_records(single_id, [record(spare, epoch)], ctx)
            single.append(time.perf_counter() - started)
        found["one_epoch_ms"] = 1000 * statistics.median(single)

        writers_of = [uuid.UUID(r["id"]) for r in single_job["runs"][1 : 1 + WRITERS]]

        def write(run_id: uuid.UUID) -> None:
            for epoch in range(PER_WRITER):
                store_records(single_id, [record(run_id, epoch)], ctx)

        threads = [threading.Thread(target=write, args=(r,)) for r in writers_of]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        found["concurrent_records_per_second"] = (
            WRITERS * PER_WRITER / (time.perf_counter() - started)
        )
        answer = http.get(f"/jobs/{single_id}/metrics.ndjson")
        cursors = [int(json.loads(line)["cursor"]) for line in answer.text.splitlines()]
        assert cursors == list(range(1, SINGLES + WRITERS * PER_WRITER + 1)), "a gap or a repeat"

        job = http.post("/jobs", json=body).json()
        job_id, runs = uuid.UUID(job["id"]), [uuid.UUID(r["id"]) for r in job["runs"]]
        started = time.perf_counter()
        for run_id in runs:
            for first in range(1, EPOCHS + 1, CHUNK):
                store_records(job_id, [record(run_id, e) for e in range(first, first + CHUNK)], ctx)
        found["write_seconds"] = time.perf_counter() - started

        started = time.perf_counter()
        items, cursor = 0, "0"
        while True:
            page = http.get(f"/jobs/{job_id}/metrics", params={"after": cursor, "limit": 10_000})
            data = page.json()
            if not data["items"]:
                break
            items, cursor = items + len(data["items"]), data["next_cursor"]
        found["read_pages_seconds"] = time.perf_counter() - started
        assert items == RUNS * EPOCHS, items

        started = time.perf_counter()
        lines, cursor = 0, "0"
        while True:
            answer = http.get(f"/jobs/{job_id}/metrics.ndjson", params={"after": cursor})
            batch = [json.loads(line) for line in answer.text.splitlines()]
            if not batch:
                break
            lines, cursor = lines + len(batch), answer.headers["optarena-next-cursor"]
        found["read_lines_seconds"] = time.perf_counter() - started
        assert lines == RUNS * EPOCHS, lines

    finally:
        api.terminate()
        api.wait(timeout=30)
        drop_database("optarena_bench_history")
    return found


def mlflow(logs: Path) -> dict[str, float]:
    python = mlflow_python()
    url = create_database("mlflow_bench_history").replace("+psycopg", "+psycopg2")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = serve(
        [
            str(VENV / "bin" / "mlflow"),
            "server",
            "--backend-store-uri",
            url,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--default-artifact-root",
            str(logs / "mlruns"),
        ],
        {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        f"{base}/health",
        logs / "mlflow.log",
    )
    try:
        side = subprocess.run(
            [
                str(python),
                str(ROOT / "benchmarks" / "mlflow_side.py"),
                base,
                str(RUNS),
                str(EPOCHS),
                str(CHUNK),
                str(SINGLES),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        found: dict[str, float] = json.loads(side.stdout.strip().splitlines()[-1])
        assert found["points_read"] == RUNS * EPOCHS * 4, found
        return found
    finally:
        server.terminate()
        server.wait(timeout=60)
        drop_database("mlflow_bench_history")


def main() -> None:
    logs = ROOT / ".data" / "bench-history"
    logs.mkdir(parents=True, exist_ok=True)
    ours = optarena(logs)
    theirs = mlflow(logs)
    print(
        f"{RUNS} runs x {EPOCHS} epochs, 4 metrics an epoch ({RUNS * EPOCHS * 4:,} points); "
        f"{os.cpu_count()} CPUs"
    )
    print(f"{'work':<52}{'optarena':>12}{'MLflow':>12}{'MLflow / optarena':>19}")
    rows = [
        ("write it, 250 epochs a call (s)", ours["write_seconds"], theirs["write_seconds"]),
        ("read it: JSON pages of 10,000 (s)", ours["read_pages_seconds"], theirs["read_seconds"]),
        (
            "read it: JSON lines, metrics.ndjson (s)",
            ours["read_lines_seconds"],
            theirs["read_seconds"],
        ),
        ("write one epoch record (ms, median)", ours["one_epoch_ms"], theirs["one_epoch_ms"]),
    ]
    for label, a, b in rows:
        print(f"{label:<52}{a:>12.3f}{b:>12.3f}{b / a:>19.1f}")
    print(
        f"{'8 concurrent writers into one job (records/s)':<52}"
        f"{ours['concurrent_records_per_second']:>12.0f}{'':>12}{'':>19}"
    )


if __name__ == "__main__":
    with speed_noted():
        main()
