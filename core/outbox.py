"""The transactional outbox: every message to the broker is a row written in the transaction
that makes it due (a submitted job, a re-queued run, a hand-back), and a relay sends the rows
after the commit and again periodically. A crash between commit and send, or a broker
outage, delays a message and never loses it; a message may be sent twice, which the worker's
atomic claim makes harmless."""

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, delete, func, select, update
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
        self.wake_relay_after_commit()

    def wake_relay_after_commit(self) -> None:
        """The relay (where the session has one) sends the new rows once they are committed."""
        wake = self.session.info.get("relay")
        if wake is not None:
            after_commit(self.session, wake)

    def take_due(self, *, limit: int) -> list[Message]:
        """Unsent messages whose time has come, oldest first, marked sent in the same
        statement: rows another relay holds are skipped, and the mark holds only if the
        transaction that sends them commits (a failed send rolls it back). A Core statement:
        the relay runs it after every submission's commit."""
        table = cast(Table, OutboxMessage.__table__)
        outbox = table.c
        due = (
            select(outbox.id)
            .where(outbox.sent_at.is_(None), outbox.available_at <= func.now())
            .order_by(outbox.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = self.session.execute(
            update(table)
            .where(outbox.id.in_(due.scalar_subquery()))
            .values(sent_at=func.now())
            .returning(outbox.id, outbox.task, outbox.args, outbox.queue)
        ).all()
        return sorted(
            (Message(id, task, list(args), queue) for id, task, args, queue in rows),
            key=lambda message: message.id,
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

    def postpone(self, ids: Sequence[int], *, error: str) -> None:
        """A failed send: try these again later, backing off (1 s doubling to a minute)."""
        self.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids))
            .values(
                attempts=OutboxMessage.attempts + 1,
                last_error=error[:1000],
                available_at=func.now()
                + func.make_interval(
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    func.least(60, func.power(2, func.least(OutboxMessage.attempts, 6))),
                ),
            )
            .execution_options(synchronize_session=False)
        )

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


class _Unsent(Exception):
    """The send failed: the transaction that marked the batch sent rolls back."""


def relay(sessions: sessionmaker[Session], send: Send, *, batch: int = 200) -> Relayed:
    """Send every due message, a batch per transaction (taken, sent, committed); stop at the
    first failed send (the broker is down: its rows wait and back off)."""
    sent = 0
    while True:
        try:
            with transaction(sessions) as session:
                messages = OutboxRepository(session).take_due(limit=batch)
                if not messages:
                    return Relayed(sent=sent, failed=0)
                try:
                    send(messages)
                except Exception as error:
                    raise _Unsent(f"{type(error).__name__}: {error}") from error
        except _Unsent as unsent:
            reason = str(unsent)
            log.warning("outbox: %d messages not sent (%s); retrying later", len(messages), reason)
            with transaction(sessions) as session:
                OutboxRepository(session).postpone([m.id for m in messages], error=reason)
            return Relayed(sent=sent, failed=len(messages), error=reason)
        sent += len(messages)
        if len(messages) < batch:  # none left just now (a commit since wakes the relay again)
            return Relayed(sent=sent, failed=0)
