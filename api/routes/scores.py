"""/scores: optimizers scored across jobs (workloads) with performance profiles."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response

from api.auth import PrincipalDep, require_principal
from api.deps import ERRORS, SessionDep
from api.services import scores
from api.services.scores import ScoreParams
from core.scores import ScoreAnswer

router = APIRouter(
    prefix="/scores",
    tags=["scores"],
    dependencies=[Depends(require_principal)],
    responses=ERRORS,
)


@router.get("", response_model=ScoreAnswer)
def score(
    session: SessionDep,
    principal: PrincipalDep,
    params: Annotated[ScoreParams, Query()],
) -> ScoreAnswer:
    """Each job a workload, each arm (by label) a contestant, scored as MLCommons AlgoPerf
    scores training algorithms: per workload the median over seeds of the time to target (a
    run that never reached it, diverged or failed: infinity), the ratio to the fastest arm,
    the performance profile and its normalized area up to r_max. Jobs of different datasets
    and models are welcome; they must have ended. A tuned comparison is scored on its final
    seeds. A job you cannot see is a 404."""
    return scores.scores(session, principal, params)


@router.get(
    "/plot.{fmt}",
    response_class=Response,
    responses={200: {"content": {"image/png": {}, "image/svg+xml": {}}}},
)
def plot(
    fmt: Literal["png", "svg"],
    session: SessionDep,
    principal: PrincipalDep,
    params: Annotated[ScoreParams, Query()],
) -> Response:
    """The performance profiles of the same query: rho(tau) per arm."""
    image = scores.plot(session, principal, params, fmt)
    return Response(image, media_type="image/png" if fmt == "png" else "image/svg+xml")
