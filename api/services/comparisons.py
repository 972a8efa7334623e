"""Runs of several jobs compared as one."""

import uuid
from collections.abc import Sequence
from dataclasses import replace

from pydantic import BaseModel
from sqlalchemy.orm import Session

from api.services.jobs import comparand
from core import kinds
from core.errors import NotFound
from core.keys import Principal
from core.repositories import JobRepository, RunRepository


def compare_runs(
    session: Session, principal: Principal, run_ids: Sequence[uuid.UUID], params: BaseModel
) -> BaseModel:
    """The runs' own jobs' comparison over just these runs; another owner's runs are as
    unknown as missing ones."""
    wanted = list(dict.fromkeys(run_ids))
    runs = RunRepository(session).visible(wanted, principal)
    missing = set(wanted) - {r.id for r in runs}
    if missing:
        raise NotFound(f"no run {', '.join(sorted(map(str, missing)))}")
    chosen = {r.id for r in runs}
    comparands = []
    for job_id in dict.fromkeys(r.job_id for r in runs):
        job = JobRepository(session).visible(job_id, principal, with_runs=True)
        assert job is not None
        found = comparand(session, job, params)
        comparands.append(replace(found, runs=[r for r in found.runs if r.id in chosen]))
    return kinds.compare_across(comparands)
