"""What a train_run task does: claim the run, train it, record every epoch and the outcome."""

import logging
import socket
import traceback
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy.orm import Session, sessionmaker

from core.db import transaction
from core.models import FINISHED_JOB, RunStatus
from core.records import EpochRecord, SequencedRecord
from core.repositories import EpochRepository, JobRepository, RunRepository
from core.settings import Settings
from core.spec import JobSpec, RaceSpec, parse_job
from core.stream import MetricsStream

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerContext:
    settings: Settings
    sessions: sessionmaker[Session]
    stream: MetricsStream
    name: str = socket.gethostname()


def execute_run(run_id: uuid.UUID, ctx: WorkerContext) -> str:
    """Train one queued run; its outcome is stored on the run, never only logged."""
    with transaction(ctx.sessions) as session:
        run = RunRepository(session).claim(run_id, worker=ctx.name)
        if run is None:
            log.info("run %s is not queued (cancelled or taken); skipping", run_id)
            return "skipped"
        job_id = run.job_id
        jobs = JobRepository(session)
        job = jobs.get(job_id)
        assert job is not None
        if job.cancel_requested_at is not None:
            RunRepository(session).finish(
                run_id, status=RunStatus.CANCELLED, error="cancelled before it started"
            )
            jobs.settle(job_id)
            return "cancelled"
        jobs.settle(job_id)
        spec = parse_job(job.spec)
        plan_args: dict[str, Any] = {
            "optimizer": run.optimizer,
            "batch_size": run.batch_size,
            "epochs": run.epochs,
            "seed": run.seed,
        }
    try:
        status = _train(run_id, job_id, spec, plan_args, ctx)
    finally:
        _settle(job_id, ctx)
    return status


def _train(
    run_id: uuid.UUID,
    job_id: uuid.UUID,
    spec: JobSpec | RaceSpec,
    plan_args: dict[str, Any],
    ctx: WorkerContext,
) -> str:
    # Keras and TensorFlow load here, in the worker's child process, never before the fork.
    from worker.backend import configure
    from worker.training.datasets import DatasetUnavailable

    configure(ctx.settings)
    from worker.training.race import RacePlan, race
    from worker.training.run import TrainingHooks, TrainingOutcome, TrainingPlan, train

    hooks = TrainingHooks(
        on_start=lambda sha, env: _record_start(run_id, sha, env, ctx),
        on_record=lambda record: store_record(job_id, record, ctx),
        on_records=lambda records: store_records(job_id, records, ctx),
        cancel_requested=lambda: cancel_requested(job_id, ctx),
        poll_seconds=ctx.settings.cancel_poll_seconds,
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
                **plan_args,
            )
            outcome = train(plan, cache_dir=ctx.settings.dataset_cache_dir, hooks=hooks)
    except DatasetUnavailable as error:
        return _fail(run_id, str(error), ctx)
    except Exception as error:
        log.error("run %s failed:\n%s", run_id, traceback.format_exc())
        return _fail(run_id, f"{type(error).__name__}: {error}", ctx)
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
    with transaction(ctx.sessions) as session:
        RunRepository(session).finish(
            run_id,
            status=status,
            summary=outcome.summary(),
            error=reason,
            diverged_epoch=outcome.diverged_epoch,
        )
    return status.value


def _record_start(run_id: uuid.UUID, sha: str, env: dict[str, Any], ctx: WorkerContext) -> None:
    with transaction(ctx.sessions) as session:
        RunRepository(session).record_start(run_id, initial_weights_sha256=sha, environment=env)


def _fail(run_id: uuid.UUID, reason: str, ctx: WorkerContext) -> str:
    with transaction(ctx.sessions) as session:
        RunRepository(session).finish(run_id, status=RunStatus.FAILED, error=reason)
    return RunStatus.FAILED.value


def store_record(job_id: uuid.UUID, record: EpochRecord, ctx: WorkerContext) -> int | None:
    """Store one record (see store_records); its number, or None if it was stored before."""
    stored = store_records(job_id, [record], ctx)
    return stored[0].seq if stored else None


def store_records(
    job_id: uuid.UUID, records: Sequence[EpochRecord], ctx: WorkerContext
) -> list[SequencedRecord]:
    """Postgres first (the record), then the live stream; a retried epoch is stored once."""
    with transaction(ctx.sessions) as session:
        stored = EpochRepository(session).add_many(job_id=job_id, records=records)
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
    with transaction(ctx.sessions) as session:
        job = JobRepository(session).settle(job_id)
        finished = job is not None and job.status in FINISHED_JOB
    if finished:
        try:
            ctx.stream.expire_after_job(job_id)
        except redis.RedisError as error:
            log.warning("could not set the expiry of job %s's stream: %s", job_id, error)
