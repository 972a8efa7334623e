"""Liveness and readiness."""

import contextlib

from fastapi import APIRouter, Response, status

from api.deps import SessionDep, StreamDep
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
