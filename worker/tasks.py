"""Celery tasks: thin; they load ids, call the service and let it record the outcome."""

import logging
import uuid
from functools import cache

from celery.exceptions import Reject
from sqlalchemy.exc import OperationalError

from core import logs
from core.db import make_engine, make_session_factory
from core.outbox import relay, send_tasks
from core.settings import get_settings
from core.stream import MetricsStream, make_redis
from worker.celery_app import app
from worker.service import HANDED_BACK, WorkerContext, execute_run
from worker.shutdown import hand_back_requested

log = logging.getLogger(__name__)


@cache
def _context() -> WorkerContext:
    # Built on first use, in the child process, so no connection crosses the fork.
    settings = get_settings()
    engine = make_engine(settings.database_url)

    def relay_now() -> None:  # after a hand-back commits; the API's relay is the fallback
        relay(sessions, lambda messages: send_tasks(app, messages))

    sessions = make_session_factory(engine, relay=relay_now)
    return WorkerContext(
        settings=settings,
        sessions=sessions,
        stream=MetricsStream(
            make_redis(settings.redis_url),
            maxlen=settings.stream_maxlen,
            ttl_seconds=settings.stream_ttl_seconds,
        ),
    )


@app.task(name="train_run")  # type: ignore[untyped-decorator]
def train_run(run_id: str) -> str:
    """Run the run with this id, whatever its kind."""
    with logs.task(run_id=run_id, worker=_context().name):  # the claim adds job and attempt
        if hand_back_requested():  # shutting down: leave the message for the next worker
            raise Reject(f"run {run_id}: this worker is shutting down", requeue=True)
        try:
            outcome = execute_run(uuid.UUID(run_id), _context())
        except OperationalError as error:
            # Postgres stayed unreachable past OPTARENA_DB_RETRY_SECONDS: keep the message, so
            # the run is tried again (resuming from its checkpoint) instead of being forgotten.
            log.error("run %s: Postgres unreachable, back to the queue: %s", run_id, error)
            raise Reject(f"run {run_id}: Postgres unreachable", requeue=True) from error
        log.info("run %s: %s", run_id, outcome)
        if outcome == HANDED_BACK:
            log.info("run %s handed back; its message is in the outbox", run_id)
        return outcome
