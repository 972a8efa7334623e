"""Sending the outbox's messages to the workers by task name: the API never imports the
worker.

On a Redis broker a relay batch goes out in one round trip: Celery builds each task message
as `send_task` does, framed as kombu's Redis transport frames it, and one pipeline pushes them
all. `send_task` made a Redis client, declared the queue and waited for a round trip for every
message: a fifth of the API's CPU in a burst of submissions (docs/performance.md, stop 33).
Other brokers (RabbitMQ) get `send_task` itself."""

import base64
import json
import uuid
from collections.abc import Sequence
from urllib.parse import urlsplit

import redis
from celery import Celery

from core.outbox import Message, send_tasks
from core.settings import Settings

# How kombu's Redis transport stores a message: its body in base64, for a queue named by the
# routing key through the default exchange, at the default priority (the queue's own list)
DEFAULT_PRIORITY = 0
PERSISTENT = 2


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
        url = settings.celery_broker_url
        self._redis: redis.Redis | None = None
        if urlsplit(url).scheme in ("redis", "rediss"):
            self._redis = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30)

    def send(self, messages: Sequence[Message]) -> None:
        """Every message to its queue, in order; raises if the broker cannot be reached."""
        if self._redis is None:
            send_tasks(self.celery, messages)
            return
        pipeline = self._redis.pipeline(transaction=False)
        for message in messages:
            pipeline.lpush(message.queue, self.framed(message))  # workers pop the other end
        pipeline.execute()

    def framed(self, message: Message) -> str:
        """The message as kombu's Redis transport stores `send_task`'s (tests/service/
        test_broker.py checks the two against each other)."""
        task_id = f"outbox-{message.id}"  # a message sent twice is recognisably the same one
        task = self.celery.amqp.as_task_v2(
            task_id,
            message.task,
            args=message.args,
            kwargs={},
            reply_to=self.celery.thread_oid,
            ignore_result=None,  # the task's own setting decides, as for send_task
        )
        body = base64.b64encode(json.dumps(task.body).encode()).decode()
        return json.dumps(
            {
                "body": body,
                "content-encoding": "utf-8",
                "content-type": "application/json",
                "headers": task.headers,
                "properties": {
                    **task.properties,
                    "delivery_mode": PERSISTENT,
                    "delivery_info": {"exchange": "", "routing_key": message.queue},
                    "priority": DEFAULT_PRIORITY,
                    "body_encoding": "base64",
                    "delivery_tag": str(uuid.uuid4()),
                },
            }
        )

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
        self.celery.close()
