"""A job moves on when one of its runs pauses or ends: its kind may resume paused runs, prune
them, or queue new ones (a tuning job's rungs and second phase), all in the transaction that
paused or ended the run, under the job's row lock; then the job's status is derived from its
runs. A decision never depends on which worker got there first: it is taken once the whole
group it concerns has arrived, from what they recorded."""

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.kinds import get_kind, parse_job
from core.kinds.base import Progress, Steps
from core.models import Job, RecordRow
from core.repositories import JobRepository, RunRepository
from core.runs import RunInfo

log = logging.getLogger(__name__)


def _records(session: Session, job: Job, run_ids: Sequence[Any]) -> dict[Any, list[Any]]:
    record = get_kind(job.kind).record
    found: dict[Any, list[Any]] = {run_id: [] for run_id in run_ids}
    rows = session.scalars(
        select(RecordRow.data)
        .where(RecordRow.job_id == job.id, RecordRow.run_id.in_(list(run_ids)))
        .order_by(RecordRow.run_id, RecordRow.position)
    )
    for data in rows:
        found[uuid.UUID(data["run_id"])].append(record.model_validate(data))
    return found


def advance(session: Session, job_id: uuid.UUID, *, queue: str) -> Steps:
    """Let the job's kind decide what its paused runs and next phase do; applied here."""
    jobs, runs = JobRepository(session), RunRepository(session)
    job = jobs.get(job_id, lock=True)
    if job is None or job.cancel_requested_at is not None:
        return Steps()
    kind = get_kind(job.kind)
    if kind.advance is None:
        return Steps()
    steps = kind.advance(
        Progress(
            spec=parse_job(job.spec),
            runs=[RunInfo.model_validate(r) for r in runs.for_job(job_id)],
            records=lambda ids: _records(session, job, ids),
        )
    )
    if steps.resume:
        runs.resume(steps.resume, queue=queue)
    for run_id, (reason, summary) in steps.prune.items():
        runs.prune(run_id, reason=reason, summary=summary)
    if steps.create:
        jobs.add_runs(job_id, steps.create, queue=queue)
    if steps:
        log.info(
            "job %s: %d runs resumed, %d pruned, %d queued",
            job_id,
            len(steps.resume),
            len(steps.prune),
            len(steps.create),
        )
    return steps


def settle(session: Session, job_id: uuid.UUID, *, queue: str) -> Job | None:
    """Advance the job, then derive its status from its runs."""
    advance(session, job_id, queue=queue)
    return JobRepository(session).settle(job_id)
