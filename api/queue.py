"""Sending the outbox's messages to the workers by task name: the API never imports the
worker."""

from collections.abc import Sequence

from celery import Celery

from core.outbox import Message, send_tasks
from core.settings import Settings


class Broker:
    def __init__(self, settings: Settings) -> None:
        self.celery = Celery("optarena-api", broker=settings.celery_broker_url)
        self.celery.conf.update(
            broker_transport_options={"visibility_timeout": settings.visibility_timeout_seconds},
            broker_connection_retry_on_startup=True,
            broker_connection_timeout=5,
        )
        # The broker's transport module is imported on the first send otherwise: 0.4 to 0.8 s
        # of CPU inside the first submissions' requests after a start. Importing it connects
        # to nothing, so a broker that is down does not stop the API from starting.
        with self.celery.connection_for_write() as connection:
            connection.get_transport_cls()

    def send(self, messages: Sequence[Message]) -> None:
        send_tasks(self.celery, messages)

    def close(self) -> None:
        self.celery.close()
