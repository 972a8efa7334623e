"""Engine and sessions. The request or the task owns the transaction; what must happen only
once it is committed (waking the outbox relay, setting a Redis flag) is registered with
`after_commit` and runs after a successful commit."""

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)
AFTER_COMMIT = "after_commit"


def make_engine(database_url: str) -> Engine:
    """An engine whose pooled connections are checked before use (Postgres may restart)."""
    return create_engine(database_url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def make_session_factory(engine: Engine, **info: Any) -> sessionmaker[Session]:
    """Sessions of the engine; `info` is given to every session (the outbox relay's waker)."""
    return sessionmaker(engine, expire_on_commit=False, info=info)


def after_commit(session: Session, callback: Callable[[], object]) -> None:
    """Run `callback` once the session's transaction has committed (never if it rolls back)."""
    session.info.setdefault(AFTER_COMMIT, []).append(callback)


def run_after_commit(session: Session) -> None:
    for callback in session.info.pop(AFTER_COMMIT, []):
        try:
            callback()
        except Exception:  # the commit stands; what follows it is best effort
            log.exception("after-commit step failed")


def discard_after_commit(session: Session) -> None:
    session.info.pop(AFTER_COMMIT, None)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: committed when the block ends, rolled back if it raises."""
    with factory() as session:
        try:
            with session.begin():
                yield session
        except BaseException:
            discard_after_commit(session)
            raise
        run_after_commit(session)
