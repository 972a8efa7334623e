"""The FastAPI application. It imports no ML library and starts in well under a second."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from api import auth
from api.limits import BodyLimit
from api.queue import RunQueue
from api.routes import comparisons, events, health, jobs
from api.routes.events import Snapshots
from core.db import make_engine, make_session_factory
from core.reaper import reap
from core.settings import Settings, get_settings
from core.spec import JOB_KINDS
from core.stream import MetricsStream, make_redis

STATIC = Path(__file__).parent / "static"
log = logging.getLogger(__name__)

DESCRIPTION = """
Submit an optimizer comparison job, poll its metrics while it trains, compare its runs.

Every optimizer x batch size x seed is one run. Within a seed all runs start from the same
weights and see the same data in the same order. Try `POST /jobs` with an example below,
follow it live at `GET /jobs/{id}/events`, or open the dashboard at `/`.
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


async def _reaper(app: FastAPI, settings: Settings) -> None:
    """Every interval: runs whose worker stopped beating go back to the queue (or fail)."""
    while True:
        await asyncio.sleep(settings.reaper_interval_seconds)
        try:
            reaped = await asyncio.to_thread(
                reap,
                app.state.sessions,
                stale_after=settings.stale_after_seconds,
                max_attempts=settings.max_attempts,
            )
            if reaped.requeued:
                await asyncio.to_thread(app.state.queue.enqueue, reaped.requeued)
        except Exception:
            log.exception(
                "reaper pass failed; trying again in %ss", settings.reaper_interval_seconds
            )


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
        # Event streams block on this client; no socket timeout, the XREAD itself is bounded.
        app.state.aredis = aioredis.Redis.from_url(settings.redis_url, socket_connect_timeout=5)
        app.state.snapshots = Snapshots(
            app.state.sessions, max_age=min(0.25, settings.sse_block_ms / 2000)
        )
        reaper = (
            asyncio.create_task(_reaper(app, settings))
            if settings.reaper_interval_seconds > 0
            else None
        )
        yield
        if reaper is not None:
            reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reaper
        await app.state.aredis.aclose()
        redis_client.close()
        engine.dispose()

    app = FastAPI(
        title="optarena",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        """The dashboard: jobs, live curves, the comparison table and a form to submit."""
        return FileResponse(STATIC / "index.html")

    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(jobs.router)
    app.include_router(comparisons.router)
    app.include_router(events.router)
    return app
