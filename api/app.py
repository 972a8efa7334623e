"""The FastAPI application. It imports no ML library and starts in well under a second."""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import redis.asyncio as aioredis
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from api import auth, errors, openapi
from api.admission import Admission
from api.background import Background
from api.limits import BodyLimit
from api.logs import RequestObserver
from api.queue import Broker
from api.ratelimit import Window
from api.routes import catalog, comparisons, events, health, jobs, scores, uploads
from api.routes.events import Snapshots
from api.tails import Tails
from core.db import make_engine, make_session_factory
from core.settings import Settings, get_settings
from core.stream import MetricsStream, make_redis

STATIC = Path(__file__).parent / "static"

DESCRIPTION = """
Submit an optimizer comparison job, poll its metrics while it trains, compare its runs.

Every optimizer x batch size x seed is one run. Within a seed all runs start from the same
weights and see the same data in the same order; every run is tested once, on held-out data
no choice was made on. Try `POST /jobs` with an example below, follow it live at
`GET /jobs/{id}/events`, or open the dashboard at `/`. `GET /kinds`, `/optimizers`,
`/datasets` and `/models` list what a job may choose; `POST /datasets` and `POST /models`
upload your own.
"""


def _freeze_startup() -> None:
    """Keep what startup made (modules, the app, its schemas) out of the collector's full
    passes, which otherwise walk all of it each time: about 160,000 objects, 0.1 s a pass on
    a CPU of the test machine, during which every event stream of the process stops. Once a
    process: an app made after that (a test's) is not frozen, so it can still be collected."""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API with its connections to Postgres, Redis and the broker."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        redis_client = make_redis(settings.redis_url)
        broker = Broker(settings)
        background = Background(settings, broker.send)
        app.state.settings = settings
        app.state.sessions = make_session_factory(engine, relay=background.wake_relay)
        app.state.stream = MetricsStream(
            redis_client, maxlen=settings.stream_maxlen, ttl_seconds=settings.stream_ttl_seconds
        )
        # The rate limit is asked on the event loop, on a connection of its own
        window = Window(settings.redis_url, limit=max(1, settings.rate_limit_per_minute))
        app.state.rate_limit = auth.RateLimit(settings, window)
        app.state.keys = auth.KeyCache(settings.key_cache_seconds)
        # Event streams' short reads share a bounded pool: a burst of a thousand streams
        # waits its turn for a connection rather than failing over to Postgres.
        app.state.aredis = aioredis.Redis(
            connection_pool=aioredis.BlockingConnectionPool.from_url(
                settings.redis_url, max_connections=64, timeout=30, socket_connect_timeout=5
            )
        )
        # Each job's tail holds one connection in a blocking XREAD (no socket timeout: the
        # XREAD itself is bounded), one per watched job, so this pool is not capped.
        app.state.tail_redis = aioredis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=5, max_connections=2**31
        )
        app.state.snapshots = Snapshots(
            app.state.sessions, max_age=min(0.25, settings.sse_block_ms / 2000)
        )
        app.state.tails = Tails(
            app.state.tail_redis, block_ms=settings.sse_block_ms, keep=events.PAGE, page=events.PAGE
        )
        background.start(app.state.sessions)
        _freeze_startup()
        yield
        await app.state.tails.close()
        background.stop()
        broker.close()
        await app.state.aredis.aclose()
        await app.state.aredis.connection_pool.disconnect()
        await app.state.tail_redis.aclose()
        window.close()
        redis_client.close()
        engine.dispose()

    app = FastAPI(title="optarena", version="0.2.0", description=DESCRIPTION, lifespan=lifespan)
    errors.install(app)
    uploads_posted = {("POST", "/datasets"), ("POST", "/models")}
    # Innermost: a request waits its turn once the body limit has let its body in
    app.add_middleware(
        Admission,
        limit=settings.api_concurrency,
        exempt_paths={"/healthz", "/readyz", "/metrics"},
        exempt=uploads_posted,
    )
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        # Uploads: the file's own limit (checked exactly as it is read) plus the multipart
        # framing around it.
        larger=uploads_posted,
        larger_max_bytes=settings.max_upload_bytes + 64 * 1024,
    )
    # The outermost: a refused body is counted and logged too, and every line of a request
    # names its job.
    app.add_middleware(RequestObserver)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        """The dashboard: jobs, live curves, the comparison table and a form to submit."""
        return FileResponse(STATIC / "index.html")

    for module in (health, catalog, auth, jobs, comparisons, scores, events, uploads):
        app.include_router(module.router)
    openapi.install(app, settings)
    return app
