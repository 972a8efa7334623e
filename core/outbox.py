"""The transactional outbox: every message to the broker is a row written in the transaction
that makes it due (a submitted job, a re-queued run, a hand-back), and a relay sends the rows
after the commit and again periodically. A crash between commit and send, or a broker
outage, delays a message and never loses it; a message may be sent twice, which the worker's
atomic claim makes harmless."""

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.db import after_commit, transaction
from core.models import OutboxMessage

log = logging.getLogger(__name__)

RUN_TASK = "train_run"  # the worker's task that takes one run (whatever its kind)


@dataclass(frozen=True)
class Message:
    """What the broker is sent: a task by name with its arguments, on a queue."""

    id: int
    task: str
    args: list[object]
    queue: str


Send = Callable[[Sequence[Message]], None]


def send_tasks(app: Any, messages: Sequence[Message]) -> None:
    """Each message as a task of the Celery app `app` (the API's or a worker's; core imports
    no Celery): raises if the broker cannot be reached. The task id names the outbox row, so
    a message sent twice is recognisably the same one."""
    with app.producer_or_acquire() as producer:
        for message in messages:
            app.send_task(
                message.task,
                args=message.args,
                queue=message.queue,
                task_id=f"outbox-{message.id}",
                producer=producer,
                retry=True,
                retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5},
            )


class OutboxRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add_runs(self, run_ids: Sequence[uuid.UUID], *, queue: str) -> None:
        """One message per run; the relay is woken when the transaction commits."""
        self.session.add_all(
            OutboxMessage(task=RUN_TASK, args=[str(r)], queue=queue, run_id=r) for r in run_ids
        )
        wake = self.session.info.get("relay")
        if wake is not None:
            after_commit(self.session, wake)

    def due(self, *, limit: int) -> list[OutboxMessage]:
        """Unsent rows whose time has come, oldest first, locked (another relay skips them)."""
        return list(
            self.session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.sent_at.is_(None), OutboxMessage.available_at <= func.now())
                .order_by(OutboxMessage.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )

    def pending(self) -> int:
        return (
            self.session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.sent_at.is_(None))
            )
            or 0
        )

    def mark_sent(self, ids: Sequence[int]) -> None:
        self.session.execute(
            update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(sent_at=func.now())
        )

    def postpone(self, rows: Sequence[OutboxMessage], *, error: str) -> None:
        """A failed send: try again later, backing off (1 s doubling to a minute)."""
        now = datetime.now(UTC)
        for row in rows:
            row.attempts += 1
            row.last_error = error[:1000]
            row.available_at = now + timedelta(seconds=min(60, 2 ** min(row.attempts - 1, 6)))

    def forget_sent(self, *, older_than: float) -> int:
        """Delete rows sent longer ago than `older_than` seconds; how many."""
        done = self.session.execute(
            delete(OutboxMessage).where(
                OutboxMessage.sent_at
                < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, older_than)
            )
        )
        return int(getattr(done, "rowcount", 0) or 0)


@dataclass(frozen=True)
class Relayed:
    sent: int
    failed: int
    error: str | None = None


def relay(sessions: sessionmaker[Session], send: Send, *, batch: int = 200) -> Relayed:
    """Send every due message, a batch per transaction; stop at the first failed send (the
    broker is down: its rows wait and back off)."""
    sent = 0
    while True:
        with transaction(sessions) as session:
            outbox = OutboxRepository(session)
            rows = outbox.due(limit=batch)
            if not rows:
                return Relayed(sent=sent, failed=0)
            messages = [Message(r.id, r.task, list(r.args), r.queue) for r in rows]
            try:
                send(messages)
            except Exception as error:
                reason = f"{type(error).__name__}: {error}"
                log.warning("outbox: %d messages not sent (%s); retrying later", len(rows), reason)
                outbox.postpone(rows, error=reason)
                return Relayed(sent=sent, failed=len(rows), error=reason)
            outbox.mark_sent([r.id for r in rows])
            sent += len(rows)
