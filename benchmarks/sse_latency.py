"""Latency from the end of an epoch on the worker to the event at the client, 50 clients
watching one job: the SSE stream against the baseline of polling GET /metrics every 0.5 s.

The writer is the worker's own code path after an epoch (worker.service.store_records: the
Postgres commit, then XADD); each record carries the time the epoch ended. The API runs as
its own process (`python -m api`), as compose runs it. Latency = arrival at the client minus
that time, on one machine and one clock.

Run: .venv/bin/python benchmarks/sse_latency.py (needs Postgres and Redis).
"""

import asyncio
import json
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optarena_client.api import parse_events

from benchmarks.api_rig import api_process, database
from core.db import make_engine, make_session_factory
from core.kinds.train.records import TrainRecord
from core.settings import Settings
from core.stream import MetricsStream, make_redis
from tests.conftest import (
    REDIS_URL,
    auth,
)
from worker.service import WorkerContext, store_records

CLIENTS, RECORDS, GAP_SECONDS, POLL_SECONDS = 50, 100, 0.05, 0.5


def percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


def ended_at(item: dict) -> float:
    return datetime.fromisoformat(item["time"]).timestamp()


async def sse_client(url: str, job_id: str, latencies: list[float], ready: asyncio.Event) -> None:
    timeout = httpx.Timeout(30, read=120)
    async with (
        httpx.AsyncClient(base_url=url, timeout=timeout, headers=auth()) as http,
        http.stream("GET", f"/jobs/{job_id}/events") as response,
    ):
        ready.set()
        buffer: list[str] = []
        async for line in response.aiter_lines():
            buffer.append(line)
            if line:
                continue
            for event in parse_events(iter(buffer)):
                if event.event == "record":
                    latencies.append((time.time() - ended_at(event.data)) * 1000)
                if event.event == "done":
                    return
            buffer = []


async def poll_client(url: str, job_id: str, latencies: list[float], stop: asyncio.Event) -> None:
    cursor = "0"
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=auth()) as http:
        while True:
            page = (await http.get(f"/jobs/{job_id}/metrics", params={"after": cursor})).json()
            now = time.time()
            latencies += [(now - ended_at(item)) * 1000 for item in page["items"]]
            cursor = page["next_cursor"]
            if page["done"] or stop.is_set():
                return
            await asyncio.sleep(POLL_SECONDS)


def write_epochs(ctx: WorkerContext, job_id: uuid.UUID, run_ids: list[uuid.UUID]) -> None:
    for i in range(RECORDS):
        run_id = run_ids[i % len(run_ids)]
        record = TrainRecord(
            run_id=run_id,
            epoch=i // len(run_ids) + 1,
            loss=1.0 / (i + 1),
            accuracy=0.5,
            val_loss=1.0,
            val_accuracy=0.5,
            learning_rate=0.001,
            epoch_seconds=GAP_SECONDS,
            examples_seen=1000 * (i + 1),
            steps=32 * (i + 1),
            time=datetime.now(UTC),
        )
        store_records(job_id, [record], ctx)
        time.sleep(GAP_SECONDS)


def finish(url: str, job_id: uuid.UUID) -> None:
    with make_engine(url).begin() as conn:
        from sqlalchemy import text

        conn.execute(
            text("UPDATE runs SET status = 'succeeded', finished_at = now() WHERE job_id = :j"),
            {"j": job_id},
        )
        conn.execute(
            text("UPDATE jobs SET status = 'succeeded', finished_at = now() WHERE id = :j"),
            {"j": job_id},
        )


async def measure(api: str, db_url: str, ctx: WorkerContext, *, sse: bool) -> list[float]:
    async with httpx.AsyncClient(base_url=api, headers=auth()) as http:
        job = (await http.post("/jobs", json={"optimizers": ["sgd", "adam"], "epochs": 50})).json()
    job_id = uuid.UUID(job["id"])
    run_ids = [uuid.UUID(r["id"]) for r in job["runs"]]
    latencies: list[float] = []
    stop = asyncio.Event()
    readies = [asyncio.Event() for _ in range(CLIENTS)]
    tasks = [
        asyncio.create_task(
            sse_client(api, job["id"], latencies, readies[i])
            if sse
            else poll_client(api, job["id"], latencies, stop)
        )
        for i in range(CLIENTS)
    ]
    if sse:
        await asyncio.gather(*(r.wait() for r in readies))
    await asyncio.sleep(0.5)
    writer = threading.Thread(target=write_epochs, args=(ctx, job_id, run_ids))
    writer.start()
    await asyncio.to_thread(writer.join)
    finish(db_url, job_id)
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    assert len(latencies) == CLIENTS * RECORDS, (len(latencies), CLIENTS * RECORDS)
    return latencies


def main() -> None:
    with database("optarena_bench_sse") as db_url:
        settings = Settings(database_url=db_url, redis_url=REDIS_URL, task_queue="unused")
        ctx = WorkerContext(
            settings=settings,
            sessions=make_session_factory(make_engine(db_url)),
            stream=MetricsStream(make_redis(REDIS_URL), maxlen=100_000, ttl_seconds=600),
        )
        # The polling baseline is 100 requests a second: no rate limit.
        with api_process(db_url, "optarena.bench.sse", rate_limit_per_minute="0") as api:
            sse = asyncio.run(measure(api.url, db_url, ctx, sse=True))
            polled = asyncio.run(measure(api.url, db_url, ctx, sse=False))
    print(
        f"{CLIENTS} clients on one job, {RECORDS} epochs {GAP_SECONDS * 1000:.0f} ms apart; "
        "latency from the end of an epoch on the worker to the client:"
    )
    print(f"{'':28} {'median ms':>10} {'p99 ms':>10} {'events':>8}")
    for label, values in (
        ("SSE /jobs/{id}/events", sse),
        (f"baseline: poll every {POLL_SECONDS}s", polled),
    ):
        median, p99 = percentiles(values)
        print(f"{label:28} {median:10.1f} {p99:10.1f} {len(values):8d}")
    print(json.dumps({"sse_p99_ms": round(percentiles(sse)[1], 1), "target_p99_ms": 100}))


if __name__ == "__main__":
    main()
