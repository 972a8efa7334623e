"""500 submissions from 50 concurrent clients (each its own key, so the default rate limit
applies as it would to 50 users): request latency and whether every job was stored.

Side by side from one run: one API process that looks every key up (the service before
OPTARENA_API_WORKERS and OPTARENA_KEY_CACHE_SECONDS), and the defaults with two processes.
The API runs as compose runs it (`python -m api`), with the outbox relay sending every job's
messages to the broker as it goes.

Run: .venv/bin/python benchmarks/submissions.py (needs Postgres and Redis).
"""

import asyncio
import json
import ssl
import statistics
import sys
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.api_rig import api_process, cpu_seconds, database, make_keys

CLIENTS, EACH = 50, 10
JOB = {"optimizers": ["sgd", "adam"], "epochs": 1}


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def client(
    http: httpx.AsyncClient, latencies: list[float], codes: list[int], first: list[float]
) -> None:
    for i in range(EACH):
        started = time.perf_counter()
        response = await http.post("/jobs", json=JOB, headers={"idempotency-key": uuid.uuid4().hex})
        elapsed = (time.perf_counter() - started) * 1000
        latencies.append(elapsed)
        if i == 0:
            first.append(elapsed)
        codes.append(response.status_code)


async def burst(url: str, secrets: list[str]) -> tuple[list[float], list[int], float, list[float]]:
    """Every client made, and its connection opened by a first read, before the clock starts:
    a client's own setup (httpx loads the CA bundle for each new client, 0.1 s of CPU) is no
    part of the service's latency. One SSL context serves them all."""
    latencies: list[float] = []
    codes: list[int] = []
    first: list[float] = []
    tls = ssl.create_default_context()
    clients = [
        httpx.AsyncClient(
            base_url=url, headers={"authorization": f"Bearer {s}"}, timeout=120, verify=tls
        )
        for s in secrets
    ]
    try:
        await asyncio.gather(*(http.get("/jobs") for http in clients))  # warm, not measured
        started = time.perf_counter()
        await asyncio.gather(*(client(http, latencies, codes, first) for http in clients))
        seconds = time.perf_counter() - started
    finally:
        await asyncio.gather(*(http.aclose() for http in clients))
    return latencies, codes, seconds, first


def stored_jobs(db_url: str) -> int:
    engine = create_engine(db_url)
    with engine.connect() as conn:
        count = int(conn.execute(text("SELECT count(*) FROM jobs")).scalar_one())
        conn.execute(text("TRUNCATE jobs, runs, outbox CASCADE"))
        conn.commit()
    engine.dispose()
    return count


def main() -> None:
    rows = []
    with database("optarena_bench_submissions") as db_url:
        secrets = make_keys(db_url, CLIENTS)
        for label, settings in (
            ("baseline: 1 process, no key cache", {"api_workers": "1", "key_cache_seconds": "0"}),
            ("defaults, 2 processes", {"api_workers": "2"}),
        ):
            with api_process(db_url, f"optarena.bench.{uuid.uuid4().hex[:8]}", **settings) as api:
                api_cpu = cpu_seconds(api.pid)
                own_cpu = time.process_time()
                latencies, codes, seconds, first = asyncio.run(burst(api.url, secrets))
                api_cpu = cpu_seconds(api.pid) - api_cpu
                own_cpu = time.process_time() - own_cpu
            stored = stored_jobs(db_url)
            cpu = (1000 * api_cpu / len(codes), 1000 * own_cpu / len(codes))
            rows.append((label, latencies, codes, seconds, stored, cpu, first))
    total = CLIENTS * EACH
    print(f"{total} submissions (POST /jobs), {CLIENTS} concurrent clients, one key each:")
    print(
        f"{'':36} {'p50 ms':>8} {'p99 ms':>8} {'jobs/s':>8} {'201s':>6} {'stored':>7} "
        f"{'API CPU ms/job':>15} {'clients CPU ms/job':>19} {'first p50 ms':>13}"
    )
    for label, latencies, codes, seconds, stored, cpu, first in rows:
        print(
            f"{label:36} {statistics.median(latencies):8.1f} {p(latencies, 0.99):8.1f} "
            f"{total / seconds:8.1f} {codes.count(201):6d} {stored:7d} "
            f"{cpu[0]:15.1f} {cpu[1]:19.1f} {statistics.median(first):13.1f}"
        )
    best = rows[-1]
    print(
        json.dumps(
            {
                "p99_ms": round(p(best[1], 0.99), 1),
                "target_p99_ms": 250,
                "lost": total - best[4],
            }
        )
    )


if __name__ == "__main__":
    main()
