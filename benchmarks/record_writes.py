"""Epoch records written as training writes them (worker.service.store_records: Postgres,
then the live stream), beside the write they replaced, from one run:

- one record at a time: median latency of a call, the writes taking turns call by call;
- the same through the floor: the SQL function alone on a bare driver connection;
- 8 concurrent writers into one job, as 8 worker processes and as 8 threads of one process:
  records a second, each record its own call; the job's cursor is checked gap-free and every
  record stored once afterwards;
- a fused group's epoch of 8 arms as the worker stores it (store_records, the live stream
  included): one call of 8 records, beside one call an arm (the worker's write before stop
  29);
- the batch function alone (8 records a call) on one connection of a new database, early and
  after the table has grown by 20,000 records, beside revision 20261201_0007's batch
  function, whose check for stored positions could become a scan of the whole table for the
  connection's life.

The baseline is the earlier write, kept here to measure it: a transaction of five round
trips (lock the job row, look for stored positions, bump the counter, insert, commit), the
row lock held across all of them.

Run: .venv/bin/python benchmarks/record_writes.py (needs Postgres and Redis).
"""

import json
import multiprocessing
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, text, tuple_, update
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.api_rig import database
from benchmarks.machine import speed_noted
from core.db import make_engine, make_session_factory, one_statement, transaction
from core.kinds.train.records import TrainRecord
from core.models import Job, RecordRow
from core.records import Record, Sequenced
from core.repositories import JobRepository
from core.runs import RunPlan
from core.settings import Settings
from core.stream import MetricsStream, make_redis
from tests.conftest import REDIS_URL, ROOT
from worker.service import WorkerContext, store_records

SINGLES, WRITERS, EACH = 500, 8, 250
Write = Callable[[uuid.UUID, Sequence[Record], WorkerContext], object]


def five_round_trips(session: Session, job_id: uuid.UUID, records: Sequence[Record]) -> list[Any]:
    """The write before migration 20261201_0007, as it was."""
    session.scalar(select(Job.id).where(Job.id == job_id).with_for_update())
    wanted = {(r.run_id, r.position) for r in records}
    stored = set(
        session.execute(
            select(RecordRow.run_id, RecordRow.position).where(
                RecordRow.job_id == job_id,
                tuple_(RecordRow.run_id, RecordRow.position).in_(wanted),
            )
        ).all()
    )
    new = [r for r in records if (r.run_id, r.position) not in stored]
    if not new:
        return []
    last = session.scalar(
        update(Job)
        .where(Job.id == job_id)
        .values(metrics_seq=Job.metrics_seq + len(new))
        .returning(Job.metrics_seq)
    )
    assert last is not None
    rows = [Sequenced(seq=last - len(new) + 1 + i, data=r.stored()) for i, r in enumerate(new)]
    session.execute(
        RecordRow.__table__.insert(),
        [
            {
                "job_id": job_id,
                "run_id": r.run_id,
                "seq": row.seq,
                "position": r.position,
                "time": r.time,
                "data": row.data,
            }
            for r, row in zip(new, rows, strict=True)
        ],
    )
    return rows


def baseline(job_id: uuid.UUID, records: Sequence[Record], ctx: WorkerContext) -> object:
    with transaction(ctx.sessions) as session:
        rows = five_round_trips(session, job_id, records)
    ctx.stream.append(job_id, rows, live_ttl=600)
    return rows


_BARE: dict[str, Any] = {}
BARE_SQL = "SELECT optarena_add_record(%s, %s, %s, %s, %s::jsonb)"


def bare(job_id: uuid.UUID, records: Sequence[Record], ctx: WorkerContext) -> object:
    """The floor, not a way to write: the SQL function alone on a bare psycopg connection of
    the process, without the pool, the retry, the metrics or the live stream."""
    import psycopg

    url = ctx.settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    if url not in _BARE:
        _BARE[url] = psycopg.connect(url, autocommit=True)
    return [
        _BARE[url].execute(BARE_SQL, (job_id, r.run_id, r.position, r.time, r.stored_json()))
        for r in records
    ]


def through_sqlalchemy(job_id: uuid.UUID, records: Sequence[Record], ctx: WorkerContext) -> object:
    """Stop 30's write: the same statement and stream append, the statement run through
    SQLAlchemy's `exec_driver_sql` (its result handling) instead of on the driver."""
    record = records[0]
    stored = record.stored_json()
    with one_statement(ctx.sessions) as connection:
        seq = connection.exec_driver_sql(
            BARE_SQL, (job_id, record.run_id, record.position, record.time, stored)
        ).scalar()
    rows = [Sequenced(seq=int(seq), data=json.loads(stored), text=stored)]
    ctx.stream.append(job_id, rows, live_ttl=600)
    return rows


WRITES: dict[str, Write] = {"optarena": store_records, "baseline": baseline, "bare": bare}
SINGLE_ONLY: dict[str, Write] = {"stop 30": through_sqlalchemy}


def context(db_url: str) -> WorkerContext:
    return WorkerContext(
        settings=Settings(database_url=db_url, redis_url=REDIS_URL, task_queue="unused"),
        sessions=make_session_factory(make_engine(db_url)),
        stream=MetricsStream(make_redis(REDIS_URL), maxlen=100_000, ttl_seconds=600),
    )


def record(run_id: uuid.UUID, epoch: int) -> TrainRecord:
    return TrainRecord(
        run_id=run_id,
        epoch=epoch,
        loss=1.0 / epoch,
        accuracy=0.5,
        val_loss=1.0,
        val_accuracy=0.5,
        learning_rate=0.001,
        epoch_seconds=0.1,
        examples_seen=1000 * epoch,
        steps=32 * epoch,
        time=datetime.now(UTC),
    )


def new_job(ctx: WorkerContext) -> tuple[uuid.UUID, list[uuid.UUID]]:
    plans = [
        RunPlan(index=i, arm=i, label=f"run {i}", optimizer={"name": "sgd"}, budget=10_000)
        for i in range(WRITERS)
    ]
    with transaction(ctx.sessions) as session:
        job = JobRepository(session).create(
            name="writes", kind="train", spec={}, runs=plans, queue="unused"
        )
        runs = sorted(session.scalars(text("SELECT id FROM runs WHERE job_id = :j"), {"j": job.id}))
    return job.id, list(runs)


def writes(how: str, ctx: WorkerContext, job_id: uuid.UUID, run_id: uuid.UUID, count: int) -> None:
    for epoch in range(1, count + 1):
        WRITES[how](job_id, [record(run_id, epoch)], ctx)


def process_writer(
    how: str, db_url: str, job_id: uuid.UUID, run_id: uuid.UUID, go: Any, done: Any, leave: Any
) -> None:
    ctx = context(db_url)
    writes(how, ctx, job_id, run_id, 1)  # connections made before the clock starts
    go.wait()
    writes(how, ctx, job_id, run_id, EACH + 1)
    # A worker does not exit after an epoch: this one stays until every writer is done, so
    # no interpreter's teardown (a second of CPU for one that has imported the worker)
    # runs inside the measured window, on the cores the others are writing with.
    done.release()
    leave.wait()


def concurrent(how: str, db_url: str, ctx: WorkerContext, *, processes: bool) -> float:
    job_id, runs = new_job(ctx)
    if processes:
        spawn = multiprocessing.get_context("spawn")
        go, done, leave = spawn.Event(), spawn.Semaphore(0), spawn.Event()
        workers: list[Any] = [
            spawn.Process(target=process_writer, args=(how, db_url, job_id, r, go, done, leave))
            for r in runs
        ]
        for w in workers:
            w.start()
        while _count(ctx, job_id) < WRITERS:
            time.sleep(0.05)
        started = time.perf_counter()
        go.set()
        for _ in workers:
            while not done.acquire(timeout=1.0):
                assert all(w.is_alive() for w in workers), f"{how}: a writer died"
        seconds = time.perf_counter() - started
        leave.set()
        for w in workers:
            w.join()
            assert w.exitcode == 0
    else:
        for r in runs:
            writes(how, ctx, job_id, r, 1)
        threads = [
            threading.Thread(target=writes, args=(how, ctx, job_id, r, EACH + 1)) for r in runs
        ]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - started
    with ctx.sessions() as session:
        seqs = list(
            session.scalars(
                text("SELECT seq FROM records WHERE job_id = :j ORDER BY seq"), {"j": job_id}
            )
        )
    assert seqs == list(range(1, WRITERS * (EACH + 1) + 1)), f"{how}: a gap or a repeat"
    return WRITERS * EACH / seconds


GROWTH, GROUP = 20_000, 8


def fused_epochs(ctx: WorkerContext, function: str) -> tuple[float, float]:
    """Median ms of an 8-record call, the first 200 calls and 200 calls after GROWTH more
    records, all on one pooled connection (as a worker holds one)."""
    job_id, runs = new_job(ctx)
    epoch = iter(range(1, 10**7))

    def call() -> float:
        n = next(epoch)
        rows = [
            {"ord": i, "run_id": str(r), "position": n, "time": "2026-12-02T00:00:00+00:00"}
            | {"data": {"run_id": str(r), "epoch": n, "loss": 1.0}}
            for i, r in enumerate(runs[:GROUP])
        ]
        started = time.perf_counter()
        with one_statement(ctx.sessions) as session:
            session.execute(
                text(f"SELECT * FROM {function}(:job, CAST(:rows AS jsonb))"),
                {"job": job_id, "rows": json.dumps(rows)},
            ).all()
        return time.perf_counter() - started

    early = statistics.median(call() for _ in range(200))
    for _ in range(GROWTH // GROUP):
        call()
    late = statistics.median(call() for _ in range(200))
    return 1000 * early, 1000 * late


def group_epochs(ctx: WorkerContext, *, together: bool) -> float:
    """Median ms of a fused group's epoch as the worker stores it (worker.service
    store_records, the live stream included): the 8 arms' records in one call (since stop
    29), or one call an arm (before)."""
    job_id, runs = new_job(ctx)
    times = []
    for epoch in range(1, 201):
        records = [record(r, epoch) for r in runs[:GROUP]]
        started = time.perf_counter()
        if together:
            store_records(job_id, records, ctx)
        else:
            for one in records:
                store_records(job_id, [one], ctx)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def install_0007_function(ctx: WorkerContext) -> str:
    """Revision 20261201_0007's batch function beside the current one, under another name."""
    from importlib.util import module_from_spec, spec_from_file_location

    path = ROOT / "migrations" / "versions" / "2026_12_02_record_write_single.py"
    spec = spec_from_file_location("revision_20261202_0008", path)
    assert spec is not None and spec.loader is not None
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    old = module.batch_function_of_0007().replace(
        "FUNCTION optarena_add_records(", "FUNCTION optarena_add_records_0007("
    )
    with one_statement(ctx.sessions) as session:
        session.execute(text(old))
    return "optarena_add_records_0007"


def _count(ctx: WorkerContext, job_id: uuid.UUID) -> int:
    with ctx.sessions() as session:
        return int(
            session.scalar(text("SELECT count(*) FROM records WHERE job_id = :j"), {"j": job_id})
            or 0
        )


def one_at_a_time(ctx: WorkerContext) -> dict[str, float]:
    """Median ms of a one-record call for each write, the writes taking turns call by call
    (this machine's speed drifts within a minute: a block of each would compare moments)."""
    every = WRITES | SINGLE_ONLY
    targets = {how: new_job(ctx) for how in every}
    for how, (job_id, runs) in targets.items():
        for epoch in range(1, 6):  # warm
            every[how](job_id, [record(runs[0], epoch)], ctx)
    latencies: dict[str, list[float]] = {how: [] for how in every}
    for epoch in range(6, SINGLES + 6):
        for how, (job_id, runs) in targets.items():
            started = time.perf_counter()
            every[how](job_id, [record(runs[0], epoch)], ctx)
            latencies[how].append(time.perf_counter() - started)
    return {how: 1000 * statistics.median(times) for how, times in latencies.items()}


def main() -> None:
    found: dict[str, dict[str, float]] = {}
    with database("optarena_bench_writes") as db_url:
        ctx = context(db_url)
        for how, ms in one_at_a_time(ctx).items():
            found[how] = {"one_ms": ms}
        stop30 = found.pop("stop 30")["one_ms"]
        for how in WRITES:
            found[how]["processes"] = concurrent(how, db_url, ctx, processes=True)
            if how != "bare":  # (one bare connection a process)
                found[how]["threads"] = concurrent(how, db_url, ctx, processes=False)
        found["optarena"]["group"] = group_epochs(ctx, together=True)
        found["baseline"]["group"] = group_epochs(ctx, together=False)
    # each on an empty database of its own, as a new deployment starts (a plan that
    # PL/pgSQL keeps is made on the table as it is then)
    for how in ("optarena", "baseline"):
        with database(f"optarena_bench_fused_{how}") as db_url:
            fresh = context(db_url)
            function = "optarena_add_records" if how == "optarena" else install_0007_function(fresh)
            early, late = fused_epochs(fresh, function)
        found[how] |= {"fused_early": early, "fused_late": late}
    print(f"{'epoch records into one job':<48}{'optarena':>10}{'baseline':>10}{'ratio':>8}")
    for label, key, better in (
        ("one record a call (ms, median)", "one_ms", lambda a, b: b / a),
        ("8 writer processes (records/s)", "processes", lambda a, b: a / b),
        ("8 writer threads, one process (records/s)", "threads", lambda a, b: a / b),
        ("a fused group's epoch, 8 arms (ms)*", "group", lambda a, b: b / a),
        ("a fused epoch, 8 records a call (ms)", "fused_early", lambda a, b: b / a),
        (f"the same after {GROWTH:,} more records (ms)", "fused_late", lambda a, b: b / a),
    ):
        ours, theirs = found["optarena"][key], found["baseline"][key]
        print(f"{label:<48}{ours:>10.2f}{theirs:>10.2f}{better(ours, theirs):>7.1f}x")
    print("* its baseline: one call an arm, as the worker wrote a fused epoch before stop 29")
    floor = found["bare"]
    print(
        f"the floor, the SQL function alone on a bare driver connection: one record "
        f"{floor['one_ms']:.2f} ms, 8 processes {floor['processes']:.0f} records/s"
    )
    print(
        f"stop 30's write (the statement through SQLAlchemy's handling): one record {stop30:.2f} ms"
    )
    print(
        json.dumps(
            {
                "one_record_ms": round(found["optarena"]["one_ms"], 2),
                "target_ms": 1.0,
                "processes_records_per_second": round(found["optarena"]["processes"]),
                "target_records_per_second": 2000,
                "bare_driver": [round(floor["one_ms"], 2), round(floor["processes"])],
                "stop_30_one_record_ms": round(stop30, 2),
                "fused_epoch_ms": [
                    round(found["optarena"][k], 2) for k in ("fused_early", "fused_late")
                ],
                "group_epoch_ms": [round(found[k]["group"], 2) for k in ("optarena", "baseline")],
                "fused_epoch_ms_0007": [
                    round(found["baseline"][k], 2) for k in ("fused_early", "fused_late")
                ],
            }
        )
    )


if __name__ == "__main__":
    with speed_noted():
        main()
