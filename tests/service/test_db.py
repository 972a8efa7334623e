"""The engine's pool hands out only open connections, and finds them without a round trip:
a connection whose backend Postgres has ended is replaced when taken, a live one is used as
it is, and taking it sends Postgres nothing."""

from typing import Any

from sqlalchemy import Connection, Engine, text

from core.db import make_engine, open_connection
from core.settings import Settings
from tests.conftest import wait_for

PID = "SELECT pg_backend_pid()"


def backend(engine: Engine) -> tuple[int, Any]:
    with engine.connect() as connection:
        return int(connection.scalar(text(PID)) or 0), connection.connection.driver_connection


def last_statement(other: Connection, pid: int) -> str:
    return str(other.scalar(text("SELECT query FROM pg_stat_activity WHERE pid = :p"), {"p": pid}))


def test_a_connection_whose_backend_ended_is_replaced_and_a_live_one_kept(
    test_settings: Settings,
) -> None:
    engine = make_engine(test_settings.database_url)
    watcher = make_engine(test_settings.database_url)
    try:
        first, driver = backend(engine)
        with engine.connect(), watcher.connect() as other:
            # taken again: the same backend, and nothing was sent to check it. Its last
            # statement is still the pool's reset when it was given back (SQLAlchemy's ping,
            # `pool_pre_ping`, would have made it ';').
            assert last_statement(other, first) == "ROLLBACK"
        assert backend(engine)[0] == first

        with watcher.connect() as other:
            assert other.scalar(text("SELECT pg_terminate_backend(:p)"), {"p": first})
        wait_for("the backend's end to reach the socket", lambda: not open_connection(driver))

        second, _ = backend(engine)

        assert second != first
        assert backend(engine)[0] == second
    finally:
        engine.dispose()
        watcher.dispose()
