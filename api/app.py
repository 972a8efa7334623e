"""The FastAPI application. It imports no ML library and starts in well under a second."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from api.queue import RunQueue
from api.routes import comparisons, health, jobs
from core.db import make_engine, make_session_factory
from core.settings import Settings, get_settings
from core.spec import JOB_KINDS
from core.stream import MetricsStream, make_redis

DESCRIPTION = """
Submit an optimizer comparison job, poll its metrics while it trains, compare its runs.

Every optimizer x batch size x seed is one run. Within a seed all runs start from the same
weights and see the same data in the same order. Try `POST /jobs` with an example below.
"""


def _field(loc: Any) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or "body"


def _location(loc: Any) -> list[Any]:
    """The field's path; the job kind pydantic puts after "body" is not part of it."""
    parts = list(loc)
    if len(parts) > 1 and parts[0] == "body" and parts[1] in JOB_KINDS:
        del parts[1]
    return parts


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    """422 naming each field and the reason, in FastAPI's shape plus one readable line."""
    assert isinstance(error, RequestValidationError)
    detail = []
    for item in error.errors():
        msg = str(item.get("msg", "")).removeprefix("Value error, ")
        detail.append({"loc": _location(item.get("loc", ())), "msg": msg, "type": item.get("type")})
    message = "; ".join(f"{_field(d['loc'])}: {d['msg']}" for d in detail)
    return JSONResponse(status_code=422, content={"message": message, "detail": detail})


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API with its connections to Postgres, Redis and the broker."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        redis_client = make_redis(settings.redis_url)
        app.state.settings = settings
        app.state.sessions = make_session_factory(engine)
        app.state.stream = MetricsStream(
            redis_client, maxlen=settings.stream_maxlen, ttl_seconds=settings.stream_ttl_seconds
        )
        app.state.queue = RunQueue(settings)
        yield
        redis_client.close()
        engine.dispose()

    app = FastAPI(
        title="optarena",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.include_router(health.router)
    app.include_router(jobs.router)
    app.include_router(comparisons.router)
    return app
