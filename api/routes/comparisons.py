"""/comparisons: runs of several jobs on the same dataset and model, compared as one."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field

from api.auth import PrincipalDep, require_principal
from api.comparisons import ComparisonError, compare_across_jobs
from api.deps import ERRORS, SessionDep
from core.compare import Comparison, RankBy, TestName
from core.spec import Metric

router = APIRouter(
    prefix="/comparisons",
    tags=["comparisons"],
    dependencies=[Depends(require_principal)],
    responses=ERRORS,
)


class ComparisonRequest(BaseModel):
    """Which runs to compare and how; the fields mean what the job comparison's parameters do."""

    model_config = ConfigDict(extra="forbid")

    run_ids: list[uuid.UUID] = Field(min_length=1, max_length=1000)
    metric: Metric = "val_accuracy"
    epochs: list[Annotated[int, Field(ge=1)]] = Field(default=[], max_length=64)
    batch_size: list[Annotated[int, Field(ge=1)]] = Field(default=[], max_length=32)
    cut: list[str] = Field(default=[], max_length=64, description="BATCHxEPOCHS, e.g. 32x5")
    by: RankBy = "best"
    test: TestName = "t"
    target: float | None = None


@router.post("", response_model=Comparison)
def compare_runs_across_jobs(
    request: Annotated[ComparisonRequest, Body()], session: SessionDep, principal: PrincipalDep
) -> Comparison:
    """The same table as a job's comparison, over runs from any jobs with the same dataset
    and model; mixing datasets or models is refused with the reason."""
    try:
        return compare_across_jobs(
            session,
            request.run_ids,
            metric=request.metric,
            cuts=request.cut,
            epochs=request.epochs,
            batch_sizes=request.batch_size,
            ranked_by=request.by,
            test=request.test,
            target=request.target,
            owner=None if principal.admin else principal.owner,
        )
    except ComparisonError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from error
