"""Engine and sessions. The request or the task owns the transaction; what must happen only
once it is committed (waking the outbox relay, setting a Redis flag) is registered with
`after_commit` and runs after a successful commit."""

import logging
import select
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)
AFTER_COMMIT = "after_commit"


def make_engine(database_url: str) -> Engine:
    """An engine whose pooled connections are checked before use (Postgres may restart).

    Up to 15 connections, all of them kept once made: with 5 kept and 10 more allowed, an API
    process at its 8 requests in flight (with its relay and reaper) opened and closed
    connections all through a burst of submissions, each a Postgres backend started and
    ended (500 submissions from 50 clients to 2 processes: 53 to 62 sessions opened, 16 to 17
    with all kept)."""
    engine = create_engine(database_url, pool_size=15, max_overflow=0)
    check_on_checkout(engine)
    return engine


def check_on_checkout(engine: Engine) -> None:
    """Hand out only connections that are still open, found without a round trip.

    A connection Postgres has ended (a restart, a terminated backend, a cut network that
    closed it) has something to read on its socket: Postgres' last message, or the end of the
    stream. A connection idle in the pool has nothing to say, so one look at the socket tells
    them apart. A dead one is thrown away and the pool makes another (`DisconnectionError`,
    as SQLAlchemy's pool expects from a checkout hook). SQLAlchemy's `pool_pre_ping`, which
    this replaces, sent `SELECT 1` instead: a round trip and a statement for Postgres on
    every request, for what a `poll()` of the socket tells."""

    @event.listens_for(engine, "checkout")
    def _checked(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if not open_connection(dbapi_connection):
            raise DisconnectionError("the pooled connection was closed by Postgres or the network")


def open_connection(dbapi_connection: Any) -> bool:
    """Whether a psycopg connection idle in a pool is still open (see `check_on_checkout`)."""
    pgconn = getattr(dbapi_connection, "pgconn", None)
    if pgconn is None:  # not psycopg: nothing to look at, as without a check
        return True
    if dbapi_connection.closed or dbapi_connection.broken:
        return False
    try:
        fd = pgconn.socket
    except Exception:  # psycopg raises when the connection has no socket any more
        return False
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return not poller.poll(0)


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


_AUTOCOMMIT: "weakref.WeakKeyDictionary[Engine, Engine]" = weakref.WeakKeyDictionary()


def _autocommit_twin(factory: sessionmaker[Session]) -> Engine:
    """An autocommit twin of the factory's engine: its own small pool whose connections are
    set to autocommit once, when made (switching a pooled connection there and back would
    cost two round trips a use). Checked as the engine's are, without a round trip; a
    connection that dies after that fails the statement with a disconnect, which invalidates
    the pool, and the caller retries (worker.service.with_one_statement)."""
    engine: Engine = factory.kw["bind"]
    twin = _AUTOCOMMIT.get(engine)
    if twin is None:
        twin = create_engine(
            engine.url,
            isolation_level="AUTOCOMMIT",
            pool_size=2,
            max_overflow=10,
        )
        check_on_checkout(twin)
        _AUTOCOMMIT[engine] = twin
    return twin


@contextmanager
def one_statement(factory: sessionmaker[Session]) -> Iterator[Connection]:
    """A unit of work that is one statement, committed by Postgres as it runs (autocommit):
    one round trip instead of BEGIN, the statement and COMMIT, on a plain connection (an ORM
    session around it cost more than the statement). Only for a block that executes a single
    idempotent statement, which is all or nothing like any transaction, under a retry of
    disconnects (the connection is not pinged first); nothing runs after a commit here."""
    with _autocommit_twin(factory).connect() as connection:
        yield connection


def driver_scalar(connection: Connection, statement: str, parameters: tuple[Any, ...]) -> Any:
    """The first value of `statement`'s first row (None without one): see `driver_row`."""
    row = driver_row(connection, statement, parameters)
    return None if row is None else row[0]


def driver_row(
    connection: Connection, statement: str, parameters: tuple[Any, ...]
) -> tuple[Any, ...] | None:
    """`statement`'s first row (None without one), run on the connection's
    own driver connection: SQLAlchemy's handling of a statement (its result's description
    read anew each call) cost as much Python as the rest of the epoch's record write. Errors
    come out as SQLAlchemy raises them, and a disconnect invalidates the connection, so the
    pool and the callers' retries see what they see for any other statement."""
    dialect = connection.dialect
    proxied = connection.connection
    driver: Any = proxied.driver_connection
    try:
        row = driver.execute(statement, parameters).fetchone()
    except dialect.loaded_dbapi.Error as error:
        lost = dialect.is_disconnect(error, proxied, None)
        if lost:
            connection.invalidate(error)
        raise DBAPIError.instance(
            statement,
            parameters,
            error,
            dialect.loaded_dbapi.Error,
            connection_invalidated=lost,
            dialect=dialect,
        ) from error
    return None if row is None else tuple(row)
