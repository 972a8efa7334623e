"""What a train_run task does: claim the run, train it, record every epoch and the outcome."""

import logging
import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from core.db import transaction
from core.models import FINISHED_JOB, RunStatus
from core.reaper import gave_up_reason
from core.records import EpochRecord, SequencedRecord
from core.repositories import EpochRepository, JobRepository, RunRepository, tries
from core.settings import Settings
from core.spec import JobSpec, RaceSpec, parse_job
from core.stream import MetricsStream
from worker.shutdown import hand_back_requested, process_alive

log = logging.getLogger(__name__)

HANDED_BACK = "handed_back"
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


def _transient(error: Exception) -> bool:
    if isinstance(error, OperationalError | InterfaceError):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


def with_retries(ctx: WorkerContext, what: str, work: Callable[[Session], T]) -> T:
    """Run a unit of work in its own transaction, retrying with backoff while Postgres is
    unreachable (up to OPTARENA_DB_RETRY_SECONDS): a short outage delays an epoch, it never
    loses one. Every unit retried here is idempotent (records are keyed by run and epoch)."""
    deadline = time.monotonic() + ctx.settings.db_retry_seconds
    delay = 0.2
    while True:
        try:
            with transaction(ctx.sessions) as session:
                return work(session)
        except Exception as error:
            if not _transient(error) or time.monotonic() + delay > deadline:
                raise
            log.warning("%s: Postgres unreachable (%s); retry in %.1f s", what, error, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


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


@dataclass(frozen=True)
class Claimed:
    job_id: uuid.UUID
    attempt: int
    spec: JobSpec | RaceSpec
    plan_args: dict[str, Any]


def _claim(session: Session, run_id: uuid.UUID, ctx: WorkerContext) -> Claimed | str:
    """Take the run (queued, or left running by a dead worker); else why not, as an outcome."""
    runs = RunRepository(session)
    current = runs.get(run_id)
    if current is None:
        return "skipped"
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
    jobs = JobRepository(session)
    job = jobs.get(job_id)
    assert job is not None
    if job.cancel_requested_at is not None:
        runs.finish(run_id, status=RunStatus.CANCELLED, error="cancelled before it started")
        jobs.settle(job_id)
        return "cancelled"
    if tries(run) > ctx.settings.max_attempts:
        reason = gave_up_reason(run, ctx.settings.max_attempts, died=tries(run) - 1)
        runs.finish(run_id, status=RunStatus.FAILED, error=reason)
        jobs.settle(job_id)
        log.warning("run %s failed: %s", run_id, reason)
        return RunStatus.FAILED.value
    if run.attempt > 1:
        log.warning("run %s: attempt %d (pid %d), resuming", run_id, run.attempt, os.getpid())
    jobs.settle(job_id)
    return Claimed(
        job_id=job_id,
        attempt=run.attempt,
        spec=parse_job(job.spec),
        plan_args={
            "optimizer": run.optimizer,
            "batch_size": run.batch_size,
            "epochs": run.epochs,
            "seed": run.seed,
        },
    )


def execute_run(run_id: uuid.UUID, ctx: WorkerContext) -> str:
    """Train one run; its outcome is stored on the run, never only logged. A run left behind
    by a dead worker resumes from its last checkpointed epoch."""
    claimed = with_retries(ctx, f"claim run {run_id}", lambda s: _claim(s, run_id, ctx))
    if isinstance(claimed, str):
        return claimed
    heart = Heartbeat(run_id, claimed.attempt, ctx)
    heart.start()
    try:
        status = _train(run_id, claimed, ctx, heart)
    finally:
        heart.stop()
        _settle(claimed.job_id, ctx)
    return status


def _train(run_id: uuid.UUID, claimed: Claimed, ctx: WorkerContext, heart: Heartbeat) -> str:
    # Keras and TensorFlow load here, in the worker's child process, never before the fork.
    from worker.backend import configure
    from worker.training.datasets import DatasetUnavailable

    configure(ctx.settings)
    from worker.training.race import RacePlan, race
    from worker.training.run import TrainingHooks, TrainingOutcome, TrainingPlan, train

    job_id, spec, plan_args, attempt = (
        claimed.job_id,
        claimed.spec,
        claimed.plan_args,
        claimed.attempt,
    )
    hooks = TrainingHooks(
        on_start=lambda sha, env: _record_start(run_id, sha, env, ctx),
        on_record=lambda record: store_record(job_id, record, ctx),
        on_records=lambda records: store_records(job_id, records, ctx),
        cancel_requested=lambda: heart.lost or heart.cancelled or cancel_requested(job_id, ctx),
        poll_seconds=ctx.settings.cancel_poll_seconds,
        hand_back_requested=hand_back_requested,
    )
    try:
        outcome: TrainingOutcome
        if isinstance(spec, RaceSpec):
            outcome = race(
                RacePlan(
                    run_id=run_id,
                    function=spec.objective.function,
                    start=spec.objective.start_point,
                    optimizer=plan_args["optimizer"],
                    steps=plan_args["epochs"],
                ),
                hooks=hooks,
            )
        else:
            plan = TrainingPlan(
                run_id=run_id,
                dataset=spec.dataset,
                model=spec.model,
                evaluate_initial=spec.evaluate_initial,
                checkpoint_dir=ctx.settings.checkpoint_dir,
                **plan_args,
            )
            outcome = train(plan, cache_dir=ctx.settings.dataset_cache_dir, hooks=hooks)
    except DatasetUnavailable as error:
        return _fail(run_id, attempt, str(error), ctx)
    except Exception as error:
        log.error("run %s failed:\n%s", run_id, traceback.format_exc())
        return _fail(run_id, attempt, f"{type(error).__name__}: {error}", ctx)
    if heart.lost:
        return "superseded"  # another attempt holds the run now; it records the outcome
    if outcome.status == HANDED_BACK:
        handed = with_retries(
            ctx,
            f"hand back run {run_id}",
            lambda s: RunRepository(s).hand_back(run_id, attempt=attempt),
        )
        log.warning("run %s handed back after epoch %d", run_id, outcome.epochs_completed)
        return HANDED_BACK if handed else "superseded"
    status = RunStatus(outcome.status)
    reason = None
    if status is RunStatus.DIVERGED:
        reason = (
            f"left the plane (|x| or |y| beyond 1e6) at step {outcome.diverged_epoch}"
            if isinstance(spec, RaceSpec)
            else f"loss became NaN or infinite in epoch {outcome.diverged_epoch}"
        )
    elif status is RunStatus.CANCELLED:
        what = "step" if isinstance(spec, RaceSpec) else "epoch"
        reason = f"cancelled while running, after {what} {outcome.epochs_completed}"
    summary = outcome.summary()
    if outcome.resumed_from_epoch is not None:
        summary["resumed_from_epoch"] = outcome.resumed_from_epoch
    with_retries(
        ctx,
        f"finish run {run_id}",
        lambda s: RunRepository(s).finish(
            run_id,
            status=status,
            summary=summary,
            error=reason,
            diverged_epoch=outcome.diverged_epoch,
            attempt=attempt,
        ),
    )
    _drop_checkpoint(run_id, ctx)
    return status.value


def _drop_checkpoint(run_id: uuid.UUID, ctx: WorkerContext) -> None:
    from worker.training.checkpoints import checkpoint_path, remove

    remove(checkpoint_path(ctx.settings.checkpoint_dir, run_id))


def _record_start(run_id: uuid.UUID, sha: str, env: dict[str, Any], ctx: WorkerContext) -> None:
    with_retries(
        ctx,
        f"start run {run_id}",
        lambda s: RunRepository(s).record_start(
            run_id, initial_weights_sha256=sha, environment=env
        ),
    )


def _fail(run_id: uuid.UUID, attempt: int, reason: str, ctx: WorkerContext) -> str:
    with_retries(
        ctx,
        f"fail run {run_id}",
        lambda s: RunRepository(s).finish(
            run_id, status=RunStatus.FAILED, error=reason, attempt=attempt
        ),
    )
    _drop_checkpoint(run_id, ctx)
    return RunStatus.FAILED.value


def store_record(job_id: uuid.UUID, record: EpochRecord, ctx: WorkerContext) -> int | None:
    """Store one record (see store_records); its number, or None if it was stored before."""
    stored = store_records(job_id, [record], ctx)
    return stored[0].seq if stored else None


def store_records(
    job_id: uuid.UUID, records: Sequence[EpochRecord], ctx: WorkerContext
) -> list[SequencedRecord]:
    """Postgres first (the record), then the live stream; a retried epoch is stored once."""
    stored = with_retries(
        ctx,
        f"store {len(records)} records of job {job_id}",
        lambda s: EpochRepository(s).add_many(job_id=job_id, records=records),
    )
    if stored:
        try:
            ctx.stream.append_many(
                job_id,
                [(s.seq, s.record) for s in stored],
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
        job = JobRepository(session).settle(job_id)
        return job is not None and job.status in FINISHED_JOB

    if with_retries(ctx, f"settle job {job_id}", settle):
        try:
            ctx.stream.expire_after_job(job_id)
        except redis.RedisError as error:
            log.warning("could not set the expiry of job %s's stream: %s", job_id, error)
