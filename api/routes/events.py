"""/jobs/{id}/events: the job as Server-Sent Events, live from Redis, replayed from Postgres.

Every record (an epoch, a step) is a `record` event whose id is its cursor, so a client that
reconnects with Last-Event-ID continues right after it. A run that changes status is a `run`
event; when every run has ended and every record was sent, a `done` event closes the stream.

Waiting is on the job's tail (`api.tails`): one blocking XREAD per job and API process, shared
by every stream of the job. When the client goes away sse-starlette cancels the generator,
which leaves the tail; the last to leave cancels its read, so no blocked reads are left.
"""

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, Header, Query, Request
from sqlalchemy.orm import Session, sessionmaker
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from api.auth import PrincipalDep, require_principal
from api.deps import ERRORS, SessionDep
from api.metrics import STREAMS, observe_lag
from api.schemas import ErrorOut
from api.services.jobs import not_found
from api.tails import Live, Tails
from core.errors import Conflict
from core.models import FINISHED_JOB, Job, JobStatus, RunStatus
from core.records import Sequenced
from core.repositories import JobRepository, RecordRepository, RunRepository
from core.stream import gapless, metrics_key

log = logging.getLogger(__name__)
router = APIRouter(tags=["jobs"], dependencies=[Depends(require_principal)], responses=ERRORS)

PAGE = 1000


@dataclass(frozen=True)
class Snapshot:
    status: str
    finished: bool
    metrics_seq: int
    runs: list[tuple[uuid.UUID, int, str, str | None]]


def _snapshot(
    status: JobStatus, metrics_seq: int, runs: list[tuple[uuid.UUID, int, RunStatus, str | None]]
) -> Snapshot:
    return Snapshot(
        status=status.value,
        finished=status in FINISHED_JOB,
        metrics_seq=metrics_seq,
        runs=[(run_id, index, run.value, error) for run_id, index, run, error in runs],
    )


def _snapshot_of(session: Session, job: Job) -> Snapshot:
    return _snapshot(
        job.status, job.metrics_seq, RunRepository(session).states_of([job.id])[job.id]
    )


def _snapshots(
    sessions: sessionmaker[Session], job_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, Snapshot]:
    """The jobs' snapshots in two plain queries (a job that is gone has none)."""
    with sessions() as session:
        found = JobRepository(session).progress(job_ids)
        runs = RunRepository(session).states_of(job_ids)
    return {
        job_id: _snapshot(status, metrics_seq, runs[job_id])
        for job_id, (status, metrics_seq) in found.items()
    }


class Snapshots:
    """Postgres looks shared by every stream in the process: a stream asks for its job's
    snapshot at most once a wait, and is given one taken at most `max_age` ago; the jobs whose
    snapshots are older by then are looked at together, in one look (two queries) for all of
    them, so a thousand streams over twenty jobs cost a few looks a second, not twenty
    looks on twenty connections at once."""

    def __init__(self, sessions: sessionmaker[Session], *, max_age: float) -> None:
        self.sessions = sessions
        self.max_age = max_age
        self._taken: dict[uuid.UUID, tuple[float, Snapshot | None]] = {}
        self._wanted: set[uuid.UUID] = set()
        self._look: asyncio.Future[None] | None = None

    async def get(self, job_id: uuid.UUID) -> Snapshot | None:
        """The job's snapshot, taken at most `max_age` ago (None: the job is gone)."""
        asked = time.monotonic()
        while True:
            taken = self._taken.get(job_id)
            if taken is not None and taken[0] >= asked - self.max_age:
                return taken[1]
            self._wanted.add(job_id)
            if self._look is None:
                self._look = asyncio.ensure_future(self._look_now())
            # Shielded: a stream that goes away does not cancel the look the others wait for.
            await asyncio.shield(self._look)

    async def _look_now(self) -> None:
        try:
            wanted, self._wanted = self._wanted, set()
            started = time.monotonic()
            found = await run_in_threadpool(_snapshots, self.sessions, wanted)
            if len(self._taken) > 1000:
                self._taken = {k: v for k, v in self._taken.items() if started - v[0] < 60}
            for job_id in wanted:
                self._taken[job_id] = (started, found.get(job_id))
        finally:
            self._look = None


def _from_postgres(
    sessions: sessionmaker[Session], job_id: uuid.UUID, cursor: int
) -> list[Sequenced]:
    with sessions() as session:
        return RecordRepository(session).after(job_id, cursor=cursor, limit=PAGE)


CURSOR_PATTERN = r"^[0-9]{1,18}$"


@router.get(
    "/jobs/{job_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The event stream."},
        409: {"model": ErrorOut, "description": "The cursor is past the last record."},
    },
)
def job_events(
    job_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    after: Annotated[
        str | None,
        Query(pattern=CURSOR_PATTERN, description="Start after this cursor (Last-Event-ID wins)."),
    ] = None,
    last_event_id: Annotated[str | None, Header(pattern=CURSOR_PATTERN)] = None,
) -> EventSourceResponse:
    """Live events of the job: `record` (id = cursor), `run` (status changes) and `done`."""
    state = request.app.state
    cursor = int(last_event_id or after or 0)
    job = JobRepository(session).visible(job_id, principal)
    if job is None:
        raise not_found(job_id)
    if cursor > job.metrics_seq:
        raise Conflict(f"cursor {cursor} is beyond this job's last record ({job.metrics_seq})")
    first = _snapshot_of(session, job)
    settings = state.settings
    return EventSourceResponse(
        _events(state, job_id, cursor, first, settings.sse_block_ms),
        ping=settings.sse_ping_seconds,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _read(
    sessions: sessionmaker[Session],
    client: aioredis.Redis,
    job_id: uuid.UUID,
    cursor: int,
    *,
    live: bool,
) -> list[Sequenced]:
    """Records after cursor: the Redis entries that continue it, else Postgres's."""
    if live:
        try:
            entries: Any = await client.xrange(metrics_key(job_id), min=f"({cursor}-0", count=PAGE)
        except aioredis.RedisError as error:
            log.warning("metrics stream of job %s unreadable: %s", job_id, error)
            return await run_in_threadpool(_from_postgres, sessions, job_id, cursor)
        records = gapless(entries or [], cursor=cursor)
        if records:
            return records
    return await run_in_threadpool(_from_postgres, sessions, job_id, cursor)


async def _events(
    state: Any,
    job_id: uuid.UUID,
    cursor: int,
    snapshot: Snapshot,
    block_ms: int,
) -> Any:
    sessions: sessionmaker[Session] = state.sessions
    client: aioredis.Redis = state.aredis
    snapshots: Snapshots = state.snapshots
    tails: Tails = state.tails
    statuses: dict[uuid.UUID, str] = {}
    looked = time.monotonic()
    tail = tails.join(job_id, cursor)
    STREAMS.inc()
    try:
        while True:
            for run_id, index, run_status, error in snapshot.runs:
                if statuses.get(run_id) != run_status:
                    statuses[run_id] = run_status
                    data = {
                        "run_id": str(run_id),
                        "index": index,
                        "status": run_status,
                        "error": error,
                    }
                    yield ServerSentEvent(data=json.dumps(data), event="run")
            # Everything up to the snapshot's last number is committed: send it all.
            while cursor < snapshot.metrics_seq:
                records = await _read(sessions, client, job_id, cursor, live=not snapshot.finished)
                if not records:
                    break
                for record in records:
                    yield Live.of(record).event
                cursor = records[-1].seq
            if snapshot.finished and cursor >= snapshot.metrics_seq:
                data = {"job_id": str(job_id), "status": snapshot.status, "cursor": str(cursor)}
                yield ServerSentEvent(data=json.dumps(data), event="done")
                return
            # Wait on the job's tail (one Redis reader for every stream of the job in this
            # process) and send what continues the cursor at once; when the tail cannot
            # continue it, read Redis or Postgres directly. Postgres is asked again (run
            # changes, the end) when the wait times out, and at most once per look interval
            # while records flow, so many watchers cost neither Redis reads nor queries.
            waited = await tails.wait(tail, cursor, timeout_ms=block_ms)
            arrived = waited.records
            if waited.behind and not arrived:
                read = await _read(sessions, client, job_id, cursor, live=True)
                arrived = [Live.of(record) for record in read]
            for live in arrived:
                observe_lag(live.ended)
                yield live.event
            if arrived:
                cursor = arrived[-1].seq
                if time.monotonic() - looked < block_ms / 1000:
                    continue
            fresh = await snapshots.get(job_id)
            if fresh is None:
                return
            snapshot, looked = fresh, time.monotonic()
    finally:
        STREAMS.dec()
        tails.leave(tail)
