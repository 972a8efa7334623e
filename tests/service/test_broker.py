"""The API's broker pushes a relay batch to Redis in one round trip, each message exactly as
Celery's `send_task` through kombu would have stored it, so a worker takes it the same way."""

import base64
import json
import uuid
from typing import Any

import redis as redis_lib

from api.queue import Broker
from core.outbox import Message, send_tasks
from core.settings import Settings


def stored(client: redis_lib.Redis, queue: str) -> list[dict[str, Any]]:
    """The queue's messages, oldest first (workers pop the right end), bodies decoded."""
    found = []
    for raw in reversed(client.lrange(queue, 0, -1)):
        message = json.loads(raw)
        message["body"] = json.loads(base64.b64decode(message["body"]))
        found.append(message)
    return found


def test_a_batch_is_stored_as_send_task_stores_each_message_and_in_order(
    test_settings: Settings, redis_client: redis_lib.Redis
) -> None:
    queue = f"optarena.test.broker.{uuid.uuid4().hex[:8]}"
    batch = [
        Message(id=n, task="train_run", args=[str(uuid.uuid4())], queue=queue) for n in (3, 1, 2)
    ]
    broker = Broker(test_settings)
    try:
        send_tasks(broker.celery, batch)  # Celery and kombu themselves
        by_celery = stored(redis_client, queue)
        redis_client.delete(queue)
        broker.send(batch)
        by_broker = stored(redis_client, queue)
    finally:
        redis_client.delete(queue)
        broker.close()
    assert [m["headers"]["id"] for m in by_broker] == ["outbox-3", "outbox-1", "outbox-2"]
    for ours, theirs in zip(by_broker, by_celery, strict=True):
        tags = (ours["properties"].pop("delivery_tag"), theirs["properties"].pop("delivery_tag"))
        assert tags[0] != tags[1]  # each push its own
        assert ours == theirs


def test_a_broker_that_is_down_raises_so_the_relay_keeps_the_rows() -> None:
    broker = Broker(Settings(broker_url="redis://127.0.0.1:9/0"))  # nothing listens there
    try:
        raised = None
        try:
            broker.send([Message(id=1, task="train_run", args=["x"], queue="q")])
        except Exception as error:
            raised = error
        assert isinstance(raised, redis_lib.ConnectionError)
    finally:
        broker.close()
