"""Liveness and readiness."""

import contextlib

from fastapi import APIRouter, HTTPException, Request, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.auth import MaybePrincipalDep
from api.deps import SessionDep, StreamDep
from api.metrics import scrape_registry
from api.schemas import Health
from core.repositories import ping

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process answers."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health, "description": "Postgres or Redis is unreachable."}},
)
def readyz(response: Response, session: SessionDep, stream: StreamDep) -> Health:
    """Postgres and Redis are reachable."""
    checks: dict[str, str] = {}
    try:
        ping(session)
        checks["postgres"] = "ok"
    except Exception as error:
        checks["postgres"] = f"unreachable: {type(error).__name__}"
        with contextlib.suppress(Exception):
            session.rollback()
    try:
        stream.client.ping()
        checks["redis"] = "ok"
    except Exception as error:
        checks["redis"] = f"unreachable: {type(error).__name__}"
    ready = all(v == "ok" for v in checks.values())
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Health(status="ready" if ready else "not ready", checks=checks)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus's text format."},
        401: {"description": "No key, and OPTARENA_METRICS_PUBLIC is off."},
        403: {"description": "A key that is not an admin's."},
    },
)
def metrics(request: Request, principal: MaybePrincipalDep) -> Response:
    """Prometheus metrics: requests by route and status with latency histograms, open event
    streams and their lag, jobs and runs by status, the queue and the outbox. Needs an admin
    key unless OPTARENA_METRICS_PUBLIC is on."""
    if not request.app.state.settings.metrics_public:
        if principal is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "metrics need an admin key ('Authorization: Bearer <key>'), or set "
                "OPTARENA_METRICS_PUBLIC on a private network",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not principal.admin:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "metrics need an admin key")
    body = generate_latest(scrape_registry(request.app.state.sessions))
    return Response(body, media_type=CONTENT_TYPE_LATEST)
