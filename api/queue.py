"""Sending runs to the workers by task name: the API never imports the worker."""

import uuid
from collections.abc import Iterable

from celery import Celery

from core.settings import Settings

TASK_NAME = "train_run"


class RunQueue:
    def __init__(self, settings: Settings) -> None:
        self.queue = settings.task_queue
        self.celery = Celery("optarena-api", broker=settings.celery_broker_url)
        self.celery.conf.update(
            broker_transport_options={"visibility_timeout": settings.visibility_timeout_seconds},
            broker_connection_retry_on_startup=True,
        )

    def enqueue(self, run_ids: Iterable[uuid.UUID]) -> None:
        """One train_run message per run; raises if the broker cannot be reached."""
        with self.celery.producer_or_acquire() as producer:
            for run_id in run_ids:
                self.celery.send_task(
                    TASK_NAME,
                    args=[str(run_id)],
                    queue=self.queue,
                    producer=producer,
                    retry=True,
                    retry_policy={"max_retries": 3, "interval_start": 0, "interval_step": 0.5},
                )
