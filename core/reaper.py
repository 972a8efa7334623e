"""The reaper: runs whose worker stopped beating go back to the queue, or, after too many
tries, end failed with the reason; queued runs whose message was lost are sent again; trained
models past their retention are deleted. Every message goes through the outbox. Safe to run
in several processes at once (SKIP LOCKED)."""

import logging
import uuid
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from core import progress
from core.artifacts import ArtifactStore, trained_model_key
from core.db import transaction
from core.models import Run, RunStatus
from core.outbox import OutboxRepository
from core.repositories import RunRepository, tries

log = logging.getLogger(__name__)


@dataclass
class Reaped:
    requeued: list[uuid.UUID] = field(default_factory=list)
    failed: list[uuid.UUID] = field(default_factory=list)
    resent: list[uuid.UUID] = field(default_factory=list)


def gave_up_reason(run: Run, max_attempts: int, *, died: int | None = None) -> str:
    """Why a run is not tried again: its worker died during every attempt it had."""
    return (
        f"its worker died during each of {tries(run) if died is None else died} attempts "
        f"(last on {run.worker}); not retried again (OPTARENA_MAX_ATTEMPTS={max_attempts})"
    )


def reap(
    sessions: sessionmaker[Session],
    *,
    stale_after: float,
    max_attempts: int,
    queue: str,
    resend_after: float | None = None,
) -> Reaped:
    """Re-queue or fail every stale run, and re-send queued runs silent for `resend_after`
    seconds; their messages wait in the outbox for the relay."""
    reaped = Reaped()
    with transaction(sessions) as session:
        runs = RunRepository(session)
        jobs = set()
        for run in runs.stale(stale_after=stale_after):
            jobs.add(run.job_id)
            if tries(run) >= max_attempts:
                runs.finish(
                    run.id, status=RunStatus.FAILED, error=gave_up_reason(run, max_attempts)
                )
                reaped.failed.append(run.id)
                log.warning("run %s failed: %s", run.id, gave_up_reason(run, max_attempts))
            else:
                beat = run.heartbeat_at.isoformat() if run.heartbeat_at else "never"
                runs.requeue(
                    run,
                    reason=f"re-queued: worker {run.worker} stopped beating (last: {beat})",
                    queue=queue,
                )
                reaped.requeued.append(run.id)
                log.warning("run %s re-queued: worker %s stopped beating", run.id, run.worker)
        if resend_after is not None:
            lost = runs.unsent(silent_for=resend_after)
            OutboxRepository(session).add_runs([r.id for r in lost], queue=queue)
            reaped.resent = [r.id for r in lost]
            if lost:
                log.warning(
                    "%d queued runs had no message for %ss; sent again", len(lost), resend_after
                )
        for job_id in jobs:
            progress.settle(session, job_id, queue=queue)
    return reaped


def expire_models(sessions: sessionmaker[Session], store: ArtifactStore, *, kept_for: float) -> int:
    """Delete trained models kept past their retention; their runs say when. How many."""
    with transaction(sessions) as session:
        runs = RunRepository(session)
        expired = runs.with_expired_models(kept_for=kept_for)
        for run in expired:
            store.remove(trained_model_key(run.id))
            runs.model_expired(run)
    if expired:
        log.info("deleted %d trained models kept past %ss", len(expired), kept_for)
    return len(expired)
