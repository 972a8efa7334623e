"""Sending the outbox's messages to the workers by task name: the API never imports the
worker."""

from collections.abc import Sequence

from celery import Celery

from core.outbox import Message
from core.settings import Settings


class Broker:
    def __init__(self, settings: Settings) -> None:
        self.celery = Celery("optarena-api", broker=settings.celery_broker_url)
        self.celery.conf.update(
            broker_transport_options={"visibility_timeout": settings.visibility_timeout_seconds},
            broker_connection_retry_on_startup=True,
            broker_connection_timeout=5,
        )

    def send(self, messages: Sequence[Message]) -> None:
        """Each message as a Celery task; raises if the broker cannot be reached. The task id
        names the outbox row, so a message sent twice is recognisably the same one."""
        with self.celery.producer_or_acquire() as producer:
            for message in messages:
                self.celery.send_task(
                    message.task,
                    args=message.args,
                    queue=message.queue,
                    task_id=f"outbox-{message.id}",
                    producer=producer,
                    retry=True,
                    retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5},
                )

    def close(self) -> None:
        self.celery.close()
