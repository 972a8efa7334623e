"""The task's last resort: when Postgres stays unreachable the message goes back to the queue."""

import uuid

import pytest
import redis
from celery.exceptions import Reject

from core.db import make_engine, make_session_factory
from core.settings import Settings
from core.stream import MetricsStream
from worker import tasks
from worker.service import WorkerContext


def test_postgres_unreachable_past_the_retries_requeues_the_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(
        database_url="postgresql+psycopg://postgres@127.0.0.1:1/nowhere", db_retry_seconds=0.5
    )
    ctx = WorkerContext(
        settings=settings,
        sessions=make_session_factory(make_engine(settings.database_url)),
        stream=MetricsStream(redis.Redis(port=1), maxlen=10, ttl_seconds=10),
    )
    monkeypatch.setattr(tasks, "_context", lambda: ctx)
    with pytest.raises(Reject) as rejected:
        tasks.train_run(str(uuid.uuid4()))
    assert rejected.value.requeue and "Postgres unreachable" in str(rejected.value.reason)
