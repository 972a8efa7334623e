"""/comparisons: runs of several jobs of one kind compared as one."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends
from pydantic import ConfigDict, Field

from api.auth import PrincipalDep, require_principal
from api.deps import ERRORS, SessionDep
from api.services.comparisons import compare_runs
from core.kinds import Comparison, ComparisonParams

router = APIRouter(
    prefix="/comparisons",
    tags=["comparisons"],
    dependencies=[Depends(require_principal)],
    responses=ERRORS,
)


class ComparisonRequest(ComparisonParams):  # type: ignore[misc, valid-type]
    """Which runs to compare and how; the other fields mean what the job comparison's
    parameters do."""

    model_config = ConfigDict(extra="forbid")

    run_ids: list[uuid.UUID] = Field(min_length=1, max_length=1000)


@router.post("", response_model=Comparison)
def compare_runs_across_jobs(
    request: Annotated[ComparisonRequest, Body()],
    session: SessionDep,
    principal: PrincipalDep,
) -> Any:
    """The same answer as a job's comparison, over runs from any jobs of one kind; for
    training they must share dataset and model, and mixing them is refused with the reason.
    A run you cannot see is a 404 naming it."""
    return compare_runs(session, principal, request.run_ids, request)
