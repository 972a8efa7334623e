"""What a train_run task does for a run of any kind: claim it, run the kind's run function,
record every record and the outcome. Every write is its own transaction, retried while
Postgres is unreachable."""

import logging
import os
import socket
import threading
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_delay
from tenacity.wait import wait_random_exponential

from core import logs, progress
from core.artifacts import checkpoint_key, open_store
from core.db import one_statement, transaction
from core.kinds import parse_job
from core.kinds.base import JobSpec
from core.models import FINISHED_JOB, RunStatus
from core.reaper import gave_up_reason
from core.records import Record, Sequenced
from core.repositories import (
    JobRepository,
    RecordRepository,
    RunRepository,
    UploadRepository,
    tries,
)
from core.runs import RunInfo
from core.settings import Settings
from core.stream import MetricsStream
from core.uploads import Stored
from worker import metrics
from worker.runs import RunContext, RunFailed, RunHooks, RunOutcome
from worker.shutdown import hand_back_requested, process_alive

log = logging.getLogger(__name__)

HANDED_BACK = "handed_back"
PAUSED = "paused"
T = TypeVar("T")


def worker_name() -> str:
    """host:pid of the process training, so a redelivery on this host can tell it is gone."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class WorkerContext:
    settings: Settings
    sessions: sessionmaker[Session]
    stream: MetricsStream
    name: str = field(default_factory=worker_name)


def _dead_here(worker: str | None) -> bool:
    """Whether `worker` was a process of this host that no longer runs."""
    if not worker:
        return False
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    return not process_alive(int(pid))


def _transient(error: BaseException) -> bool:
    if isinstance(error, OperationalError | InterfaceError):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


def with_retries(ctx: WorkerContext, what: str, work: Callable[[Session], T]) -> T:
    """Run a unit of work in its own transaction, retrying while Postgres is unreachable (up
    to OPTARENA_DB_RETRY_SECONDS, waits growing to 5 s with full jitter, so workers do not
    all come back at once): a short outage delays an epoch, it never loses one. Every unit
    retried here is idempotent (records are keyed by run and position)."""

    def once() -> T:
        with transaction(ctx.sessions) as session:
            return work(session)

    return _retried(ctx, what, once)


def with_one_statement(ctx: WorkerContext, what: str, work: Callable[[Connection], T]) -> T:
    """`with_retries` for a unit that is one statement, run in autocommit on a plain
    connection (`core.db.one_statement`): the epoch's record write."""

    def once() -> T:
        with one_statement(ctx.sessions) as connection:
            return work(connection)

    return _retried(ctx, what, once)


def _retried(ctx: WorkerContext, what: str, once: Callable[[], T]) -> T:
    try:
        return once()  # the common case, without building the retry's machinery
    except Exception as error:
        if not _transient(error) or ctx.settings.db_retry_seconds <= 0:
            raise
        log.warning("%s: Postgres unreachable (%s); retrying", what, error)

    def warn(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s: Postgres unreachable (%s); retry in %.1f s", what, error, wait)

    retrying = Retrying(
        retry=retry_if_exception(_transient),
        wait=wait_random_exponential(multiplier=0.4, max=5.0),
        stop=stop_after_delay(ctx.settings.db_retry_seconds),
        before_sleep=warn,
        reraise=True,
    )
    return retrying(once)


class Heartbeat(threading.Thread):
    """Beats the run's heartbeat in Postgres while it trains, and learns from the same row
    whether the job is to be cancelled and whether this attempt still holds the run."""

    def __init__(self, run_id: uuid.UUID, attempt: int, ctx: WorkerContext) -> None:
        super().__init__(name=f"heartbeat-{run_id}", daemon=True)
        self.run_id, self.attempt, self.ctx = run_id, attempt, ctx
        self.halt = threading.Event()
        self.lost = False
        self.cancelled = False

    def run(self) -> None:
        with logs.fields(run_id=str(self.run_id), attempt=self.attempt, worker=self.ctx.name):
            self.beat()

    def beat(self) -> None:
        while not self.halt.wait(self.ctx.settings.heartbeat_seconds):
            try:
                with transaction(self.ctx.sessions) as session:
                    held, cancel = RunRepository(session).beat(self.run_id, attempt=self.attempt)
            except Exception as error:
                log.warning("heartbeat of run %s not written: %s", self.run_id, error)
                continue
            self.cancelled = cancel
            if not held and not self.lost:
                log.warning("run %s was taken over by another attempt; stopping", self.run_id)
                self.lost = True

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=10)


class CancelWatch(threading.Thread):
    """Reads the job's cancel flag every `cancel_poll_seconds`, so a training thread asking
    whether to stop reads a field and never waits on Redis."""

    def __init__(self, job_id: uuid.UUID, ctx: WorkerContext) -> None:
        super().__init__(name=f"cancel-{job_id}", daemon=True)
        self.job_id, self.ctx = job_id, ctx
        self.halt = threading.Event()
        self.cancelled = False

    def run(self) -> None:
        with logs.fields(job_id=str(self.job_id), worker=self.ctx.name):
            self.watch()

    def watch(self) -> None:
        while not self.cancelled and not self.halt.is_set():
            try:
                self.cancelled = cancel_requested(self.job_id, self.ctx)
            except Exception as error:  # the heartbeat reads the job row as well
                log.warning("cancel flag of job %s not read: %s", self.job_id, error)
            self.halt.wait(self.ctx.settings.cancel_poll_seconds)

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=10)


@dataclass(frozen=True)
class Claimed:
    job_id: uuid.UUID
    spec: JobSpec
    run: RunInfo


def _claim(session: Session, run_id: uuid.UUID, ctx: WorkerContext) -> list[Claimed] | str:
    """Take the run (queued, or left running by a dead worker) and the queued runs of its job
    that train with it; else why not, as an outcome."""
    runs = RunRepository(session)
    current = runs.get(run_id)
    if current is None:
        return "skipped"
    # The job's row first, as a cancel and every decision take it: a claim that locked the
    # run first could deadlock with a cancel cancelling that (still queued) run.
    jobs = JobRepository(session)
    jobs.get(current.job_id, lock=True)
    dead = current.worker if _dead_here(current.worker) else None
    run = runs.claim(
        run_id,
        worker=ctx.name,
        stale_after=ctx.settings.stale_after_seconds,
        dead_worker=dead,
    )
    if run is None:
        log.info("run %s is %s (ended or alive elsewhere); skipping", run_id, current.status)
        return "skipped"
    job_id = run.job_id
    logs.bind(job_id=str(job_id), attempt=run.attempt)
    job = jobs.get(job_id)
    assert job is not None
    if job.cancel_requested_at is not None:
        runs.finish(run_id, status=RunStatus.CANCELLED, error="cancelled before it started")
        jobs.settle(job_id)
        return "cancelled"
    if tries(run) > ctx.settings.max_attempts:
        reason = gave_up_reason(run, ctx.settings.max_attempts, died=tries(run) - 1)
        runs.finish(run_id, status=RunStatus.FAILED, error=reason)
        progress.settle(session, job_id, queue=ctx.settings.task_queue)
        log.warning("run %s failed: %s", run_id, reason)
        return RunStatus.FAILED.value
    if run.attempt > 1:
        log.warning("run %s: attempt %d (pid %d), resuming", run_id, run.attempt, os.getpid())
    first = Claimed(job_id=job_id, spec=parse_job(job.spec), run=RunInfo.model_validate(run))
    group = [first, *_mates(runs, first, ctx)]
    jobs.settle(job_id)
    return group


def _mates(runs: RunRepository, first: Claimed, ctx: WorkerContext) -> list[Claimed]:
    """The job's queued runs that train together with `first` (its kind groups them by key),
    up to OPTARENA_FUSE_MAX_ARMS in all, taken in the same transaction. Their own messages
    then find them running and are skipped."""
    if ctx.settings.fuse_max_arms < 2:
        return []
    from worker.kinds import grouping  # loaded by execute_run, before the claim

    kind = grouping(first.spec.kind)
    key = kind.key(first.spec, first.run) if kind else None
    if kind is None or key is None:
        return []
    mates: list[Claimed] = []
    for candidate in runs.queued(first.job_id):
        if len(mates) + 1 >= ctx.settings.fuse_max_arms:
            break
        if candidate.id == first.run.id or tries(candidate) + 1 > ctx.settings.max_attempts:
            continue  # one past its tries fails through its own message, with the reason
        if kind.key(first.spec, RunInfo.model_validate(candidate)) != key:
            continue
        taken = runs.claim(candidate.id, worker=ctx.name)
        if taken is not None:
            mates.append(Claimed(first.job_id, first.spec, RunInfo.model_validate(taken)))
    if mates:
        log.info("run %s trains with %d more of its job", first.run.id, len(mates))
    return mates


def execute_run(run_id: uuid.UUID, ctx: WorkerContext) -> str:
    """Run one run (with the runs that train together with it); each outcome is stored on
    its run, never only logged. A run left behind by a dead worker resumes from its last
    checkpoint."""
    # Keras and its backend load here, in the worker's child process, never before the fork,
    # and before the claim: a run claimed must beat at once (loading takes seconds).
    from worker.backend import configure

    configure(ctx.settings)
    claimed = with_retries(ctx, f"claim run {run_id}", lambda s: _claim(s, run_id, ctx))
    if isinstance(claimed, str):
        return claimed
    hearts = [Heartbeat(c.run.id, c.run.attempt, ctx) for c in claimed]
    watch = CancelWatch(claimed[0].job_id, ctx)
    threads: list[Heartbeat | CancelWatch] = [*hearts, watch]
    for thread in threads:
        thread.start()
    metrics.grouped(len(claimed))
    try:
        statuses = _run(claimed, ctx, hearts, watch)
        for status in statuses:
            metrics.ended(status)
    finally:
        for thread in threads:
            thread.stop()
        _settle(claimed[0].job_id, ctx)
    return statuses[0]


def _run(
    group: list[Claimed], ctx: WorkerContext, hearts: list[Heartbeat], watch: CancelWatch
) -> list[str]:
    from worker.kinds import grouping, run_function

    first = group[0]
    try:
        store = open_store(ctx.settings)
        uploads = with_retries(
            ctx, f"read the uploads of run {first.run.id}", lambda s: _uploads(s, first.spec)
        )
        contexts = [
            RunContext(
                run=claimed.run,
                spec=claimed.spec,
                hooks=_hooks(claimed, heart, watch, ctx),
                cache_dir=ctx.settings.dataset_cache_dir,
                store=store,
                fashion_mnist_dir=ctx.settings.fashion_mnist_dir,
                keep_trained_model=ctx.settings.trained_model_retention_seconds > 0,
                uploads=uploads,
                steps_per_execution=ctx.settings.steps_per_execution,
            )
            for claimed, heart in zip(group, hearts, strict=True)
        ]
        kind = grouping(first.spec.kind)
        if len(group) > 1 and kind is not None:
            outcomes = kind.run(contexts)
        else:
            outcomes = [run_function(first.spec.kind)(contexts[0])]
    except RunFailed as error:
        return [_fail(c.run.id, c.job_id, c.run.attempt, str(error), ctx) for c in group]
    except Exception as error:
        log.error("run %s failed:\n%s", first.run.id, traceback.format_exc())
        reason = f"{type(error).__name__}: {error}"
        return [_fail(c.run.id, c.job_id, c.run.attempt, reason, ctx) for c in group]
    return [
        _conclude(claimed, outcome, heart, ctx)
        for claimed, outcome, heart in zip(group, outcomes, hearts, strict=True)
    ]


def _hooks(claimed: Claimed, heart: Heartbeat, watch: CancelWatch, ctx: WorkerContext) -> RunHooks:
    run_id, job_id = claimed.run.id, claimed.job_id

    def store(records: Sequence[Record]) -> list[Sequenced]:  # any run's of the job
        return store_records(job_id, records, ctx)

    return RunHooks(
        on_start=lambda sha, env: _record_start(run_id, sha, env, ctx),
        on_records=store,
        cancel_requested=lambda: heart.lost or heart.cancelled or watch.cancelled,
        poll_seconds=ctx.settings.cancel_poll_seconds,
        hand_back_requested=hand_back_requested,
        on_job_records=store,
    )


def _conclude(claimed: Claimed, outcome: RunOutcome, heart: Heartbeat, ctx: WorkerContext) -> str:
    """Store how the run ended (fenced by its attempt), with what its end makes due."""
    run_id, attempt, job_id = claimed.run.id, claimed.run.attempt, claimed.job_id
    if heart.lost:
        return "superseded"  # another attempt holds the run now; it records the outcome
    queue = ctx.settings.task_queue
    if outcome.status == HANDED_BACK:
        handed = with_retries(
            ctx,
            f"hand back run {run_id}",
            lambda s: RunRepository(s).hand_back(run_id, attempt=attempt, queue=queue),
        )
        log.warning("run %s handed back after %d", run_id, outcome.completed)
        return HANDED_BACK if handed else "superseded"
    if outcome.status == PAUSED:

        def pause(session: Session) -> bool:
            held = RunRepository(session).pause(run_id, attempt=attempt, at=outcome.completed)
            if held:  # the decision may be this run's to trigger: same transaction
                progress.settle(session, job_id, queue=queue)
            return held

        paused = with_retries(ctx, f"pause run {run_id}", pause)
        log.info("run %s paused at %d", run_id, outcome.completed)
        return PAUSED if paused else "superseded"

    def finish(session: Session) -> None:
        done = RunRepository(session).finish(
            run_id,
            status=RunStatus(outcome.status),
            summary=outcome.summary,
            error=outcome.reason,
            diverged_at=outcome.diverged_at,
            attempt=attempt,
        )
        if done:  # what the run's end makes due (a rung, a phase) commits with it
            progress.settle(session, job_id, queue=queue)

    with_retries(ctx, f"finish run {run_id}", finish)
    metrics.checkpointed(outcome.summary)
    _drop_checkpoint(run_id, ctx)
    return outcome.status


def _uploads(session: Session, spec: JobSpec) -> dict[Any, Stored]:
    """Where the bytes of the job's uploads are, and their facts (checked at submit; an
    upload is not deleted while a queued or running job names it)."""
    found: dict[Any, Stored] = {}
    for _, kind, upload_id in spec.uploads():
        row = UploadRepository(session).get(upload_id)
        if row is None:
            raise RunFailed(f"the {kind} {upload_id} this job names no longer exists")
        found[upload_id] = Stored(key=row.key, meta=row.meta)
    return found


def _drop_checkpoint(run_id: uuid.UUID, ctx: WorkerContext) -> None:
    try:
        open_store(ctx.settings).remove(checkpoint_key(run_id))
    except OSError as error:  # the run's outcome is stored; a stale checkpoint costs space only
        log.warning("could not remove the checkpoint of run %s: %s", run_id, error)


def _record_start(run_id: uuid.UUID, sha: str, env: dict[str, Any], ctx: WorkerContext) -> None:
    metrics.device(env)
    with_retries(
        ctx,
        f"start run {run_id}",
        lambda s: RunRepository(s).record_start(
            run_id, initial_weights_sha256=sha, environment=env
        ),
    )


def _fail(
    run_id: uuid.UUID, job_id: uuid.UUID, attempt: int, reason: str, ctx: WorkerContext
) -> str:
    def fail(session: Session) -> None:
        if RunRepository(session).finish(
            run_id, status=RunStatus.FAILED, error=reason, attempt=attempt
        ):
            progress.settle(session, job_id, queue=ctx.settings.task_queue)

    with_retries(ctx, f"fail run {run_id}", fail)
    _drop_checkpoint(run_id, ctx)
    return RunStatus.FAILED.value


def store_records(
    job_id: uuid.UUID, records: Sequence[Record], ctx: WorkerContext
) -> list[Sequenced]:
    """Postgres first (the records), then the live stream; a retried position is stored once."""
    stored = with_one_statement(
        ctx,
        f"store {len(records)} records of job {job_id}",
        lambda connection: RecordRepository(connection).add_many(job_id=job_id, records=records),
    )
    if stored:
        metrics.stored(stored)
        try:
            ctx.stream.append(
                job_id,
                stored,
                live_ttl=ctx.settings.max_run_seconds + ctx.settings.stream_ttl_seconds,
            )
        except redis.RedisError as error:
            # Readers fall back to Postgres when the stream has a gap.
            log.warning("%d records of job %s not streamed: %s", len(stored), job_id, error)
    return stored


def cancel_requested(job_id: uuid.UUID, ctx: WorkerContext) -> bool:
    """The Redis flag, or the job row when Redis cannot be asked."""
    try:
        return ctx.stream.cancel_requested(job_id)
    except redis.RedisError:
        with transaction(ctx.sessions) as session:
            job = JobRepository(session).get(job_id)
            return job is None or job.cancel_requested_at is not None


def _settle(job_id: uuid.UUID, ctx: WorkerContext) -> None:
    def settle(session: Session) -> bool:
        job = progress.settle(session, job_id, queue=ctx.settings.task_queue)
        return job is not None and job.status in FINISHED_JOB

    if with_retries(ctx, f"settle job {job_id}", settle):
        try:
            ctx.stream.expire_after_job(job_id)
        except redis.RedisError as error:
            log.warning("could not set the expiry of job %s's stream: %s", job_id, error)
