"""Live streams at scale: 1,000 SSE clients watching 20 jobs (50 a job) while epochs arrive,
beside 50 clients on one job (the load the stream was first measured at), from one run.

Latency = arrival of the `record` event at the client minus the time the epoch ended on the
writer, which stores it as the worker does (worker.service.store_records: the Postgres
commit, then XADD). One API process (`python -m api`, the defaults: every stream of a job in
the process waits on the job's one tail). The clients are plain asyncio sockets, so the load
generator itself costs little of the two cores, and the writer processes are started and
connected before the first epoch ends (their start took seconds of both cores, inside the
window, until stop 31).

Run: .venv/bin/python benchmarks/sse_load.py (needs Postgres and Redis).
"""

import asyncio
import json
import multiprocessing
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.api_rig import api_process, database
from benchmarks.machine import speed_noted
from core.db import make_engine, make_session_factory
from core.kinds.train.records import TrainRecord
from core.settings import Settings
from core.stream import MetricsStream, make_redis
from tests.conftest import KEYS, REDIS_URL, auth
from worker.service import WorkerContext, store_records

RECORDS, GAP_SECONDS, WRITERS = 20, 0.5, 4


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def watch(url: str, job_id: str, latencies: list[float], ready: asyncio.Event) -> None:
    """One client: GET /jobs/{id}/events over a raw socket, chunked body parsed by hand."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port, limit=2**20)
    writer.write(
        (
            f"GET /jobs/{job_id}/events HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Authorization: Bearer {KEYS['tester'][1]}\r\nAccept: text/event-stream\r\n\r\n"
        ).encode()
    )
    status = await reader.readline()
    if b" 200 " not in status:
        raise RuntimeError(f"events of {job_id}: {status!r}")
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    pending, event = "", ""
    try:
        while True:
            size = int((await reader.readline()).strip() or b"0", 16)
            if size == 0:
                return
            pending += (await reader.readexactly(size + 2))[:-2].decode()
            *lines, pending = pending.split("\n")
            for line in lines:
                line = line.rstrip("\r")
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event == "record":
                    ended = datetime.fromisoformat(json.loads(line[5:])["time"]).timestamp()
                    latencies.append((time.time() - ended) * 1000)
                elif line.startswith("data:") and event == "run":
                    ready.set()
                elif line.startswith("data:") and event == "done":
                    return
    finally:
        writer.close()


def writer(db_url: str, jobs: list[tuple[uuid.UUID, list[uuid.UUID]]], ready: Any, go: Any) -> None:
    """Every job gets an epoch each GAP_SECONDS, the jobs' records spread over the gap. Once
    started (its imports done) it waits for `go`, as a worker is up before its epochs end: a
    process's start is no part of the window the latencies are measured in."""
    settings = Settings(database_url=db_url, redis_url=REDIS_URL, task_queue="unused")
    ctx = WorkerContext(
        settings=settings,
        sessions=make_session_factory(make_engine(db_url)),
        stream=MetricsStream(make_redis(REDIS_URL), maxlen=100_000, ttl_seconds=600),
    )
    ready.release()
    go.wait()
    for epoch in range(1, RECORDS + 1):
        started = time.monotonic()
        for i, (job_id, run_ids) in enumerate(jobs):
            time.sleep(max(0.0, started + GAP_SECONDS * i / len(jobs) - time.monotonic()))
            record = TrainRecord(
                run_id=run_ids[epoch % len(run_ids)],
                epoch=(epoch + 1) // len(run_ids),
                loss=1.0 / epoch,
                accuracy=0.5,
                val_loss=1.0,
                val_accuracy=0.5,
                learning_rate=0.001,
                epoch_seconds=GAP_SECONDS,
                examples_seen=1000 * epoch,
                steps=32 * epoch,
                time=datetime.now(UTC),
            )
            store_records(job_id, [record], ctx)
        time.sleep(max(0.0, started + GAP_SECONDS - time.monotonic()))


def finish(db_url: str) -> None:
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE runs SET status = 'succeeded', finished_at = now()"))
        conn.execute(text("UPDATE jobs SET status = 'succeeded', finished_at = now()"))
    engine.dispose()


async def scenario(url: str, db_url: str, jobs: int, each: int) -> list[float]:
    async with httpx.AsyncClient(base_url=url, headers=auth(), timeout=60) as http:
        made = [
            (await http.post("/jobs", json={"optimizers": ["sgd", "adam"], "epochs": 50})).json()
            for _ in range(jobs)
        ]
    latencies: list[float] = []
    readies = [asyncio.Event() for _ in range(jobs * each)]
    clients = [
        asyncio.create_task(watch(url, made[i % jobs]["id"], latencies, ready))
        for i, ready in enumerate(readies)
    ]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), timeout=300)
    ids = [(uuid.UUID(j["id"]), [uuid.UUID(r["id"]) for r in j["runs"]]) for j in made]
    # The writers are processes of their own, as workers are: not the clients' event loop.
    spawn = multiprocessing.get_context("spawn")
    ready, go = spawn.Semaphore(0), spawn.Event()
    writers = [
        spawn.Process(target=writer, args=(db_url, ids[w::WRITERS], ready, go))
        for w in range(WRITERS)
    ]
    for process in writers:
        process.start()
    for _ in writers:
        while not await asyncio.to_thread(ready.acquire, timeout=1.0):
            if not all(process.is_alive() for process in writers):
                raise RuntimeError("a writer died before it was ready")
    go.set()
    for process in writers:
        await asyncio.to_thread(process.join)
        if process.exitcode != 0:
            raise RuntimeError(f"a writer failed: exit code {process.exitcode}")
    finish(db_url)
    await asyncio.wait_for(asyncio.gather(*clients), timeout=300)
    assert len(latencies) == jobs * each * RECORDS, (len(latencies), jobs * each * RECORDS)
    return latencies


def main() -> None:
    rows = []
    with database("optarena_bench_sse_load") as db_url:
        queue = f"optarena.bench.{uuid.uuid4().hex[:8]}"
        with api_process(db_url, queue, rate_limit_per_minute="0") as api:
            for jobs, each in ((1, 50), (20, 50)):
                rows.append((jobs, each, asyncio.run(scenario(api.url, db_url, jobs, each))))
    print(
        f"SSE clients, each job an epoch every {GAP_SECONDS} s for {RECORDS} epochs; latency "
        "from the end of an epoch on the writer to the event at the client:"
    )
    print(f"{'':30} {'median ms':>10} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'events':>7}")
    for jobs, each, values in rows:
        label = f"{jobs * each} clients over {jobs} job{'s' if jobs > 1 else ''}"
        print(
            f"{label:30} {statistics.median(values):10.1f} {pct(values, 0.9):8.1f} "
            f"{pct(values, 0.99):8.1f} {max(values):8.1f} {len(values):7d}"
        )
    print(
        json.dumps({"p99_ms_1000_clients": round(pct(rows[-1][2], 0.99), 1), "target_p99_ms": 100})
    )


if __name__ == "__main__":  # the guard also keeps spawned writers from running main
    with speed_noted():
        main()
