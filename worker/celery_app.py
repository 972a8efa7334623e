"""The Celery application of the training workers. Importing it never imports Keras."""

from typing import Any

from celery import Celery
from celery.signals import setup_logging

from core import logs
from core.settings import Settings, get_settings


@setup_logging.connect  # type: ignore[untyped-decorator]
def _logging(**_: Any) -> None:
    """Celery leaves logging to core.logs (a receiver here stops it configuring its own);
    the pool processes inherit it when they fork."""
    logs.configure(get_settings(), service="worker")


def make_celery(settings: Settings) -> Celery:
    """Celery configured for long GPU runs: one at a time, acknowledged when done."""
    app = Celery("optarena", broker=settings.celery_broker_url, include=["worker.tasks"])
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=settings.worker_concurrency,
        task_ignore_result=True,
        task_default_queue=settings.task_queue,
        broker_connection_retry_on_startup=True,
        # Above the longest allowed run, so a long run is not delivered twice.
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_seconds},
        worker_hijack_root_logger=False,
    )
    return app


app = make_celery(get_settings())
