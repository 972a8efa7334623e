"""The outbox relay against real Postgres: a batch is taken and marked sent in one statement
and committed only once it is sent; a failed send leaves it unsent, backing off; two relays
never send the same row."""

import threading
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from core.outbox import Message, relay
from tests.service.test_repositories import make_job


def outbox(sessions: sessionmaker[Session]) -> list[tuple[int, bool, int]]:
    """Each row: id, whether sent, attempts."""
    with sessions() as session:
        rows = session.execute(
            text("SELECT id, sent_at IS NOT NULL, attempts FROM outbox ORDER BY id")
        )
        return [(row[0], row[1], row[2]) for row in rows]


def clock(sessions: sessionmaker[Session]) -> datetime:
    with sessions() as session:
        return session.execute(text("SELECT clock_timestamp()")).scalar_one()  # type: ignore[no-any-return]


def due_within(sessions: sessionmaker[Session], earliest: datetime, latest: datetime) -> bool:
    """Whether every row is due between the two times."""
    with sessions() as session:
        return bool(
            session.execute(
                text("SELECT bool_and(available_at BETWEEN :a AND :b) FROM outbox"),
                {"a": earliest, "b": latest},
            ).scalar_one()
        )


def broken(messages: Sequence[Message]) -> None:
    raise ConnectionError("the broker is down")


def fails_backing_off(sessions: sessionmaker[Session], attempts: int, seconds: int) -> None:
    """A relay with the broker down: every row one more attempt, due `seconds` after it."""
    with sessions.begin() as session:
        session.execute(text("UPDATE outbox SET available_at = now()"))
    before = clock(sessions)
    failed = relay(sessions, broken)
    after = clock(sessions)
    assert (failed.sent, failed.failed) == (0, 3)
    assert failed.error == "ConnectionError: the broker is down"
    assert [row[1:] for row in outbox(sessions)] == [(False, attempts)] * 3
    wait = timedelta(seconds=seconds)
    assert due_within(sessions, before + wait, after + wait)


def test_a_failed_send_leaves_the_batch_unsent_backing_off_and_a_good_one_marks_it_sent(
    sessions: sessionmaker[Session],
) -> None:
    make_job(sessions, ["sgd", "adam", "rmsprop"])
    ids = [row[0] for row in outbox(sessions)]

    fails_backing_off(sessions, attempts=1, seconds=1)
    fails_backing_off(sessions, attempts=2, seconds=2)
    with sessions.begin() as session:
        session.execute(text("UPDATE outbox SET attempts = 9"))
    fails_backing_off(sessions, attempts=10, seconds=60)  # at most a minute

    with sessions.begin() as session:  # not due yet: nothing is taken
        session.execute(text("UPDATE outbox SET available_at = now() + interval '1 hour'"))
    assert relay(sessions, broken).failed == 0

    with sessions.begin() as session:
        session.execute(text("UPDATE outbox SET available_at = now()"))
    got: list[Message] = []
    done = relay(sessions, got.extend)
    assert (done.sent, done.failed) == (3, 0)
    assert [m.id for m in got] == ids  # oldest first
    assert all(row[1] for row in outbox(sessions))
    assert relay(sessions, got.extend).sent == 0


def test_two_relays_at_once_never_send_the_same_row(sessions: sessionmaker[Session]) -> None:
    for _ in range(10):
        make_job(sessions, ["sgd", "adam"])
    sent: list[list[int]] = [[], []]
    start = threading.Barrier(2)

    def run(k: int) -> None:
        start.wait()
        relay(sessions, lambda messages: sent[k].extend(m.id for m in messages), batch=3)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(sent[0] + sent[1]) == [row[0] for row in outbox(sessions)]
    assert not set(sent[0]) & set(sent[1])
