"""The epoch-by-epoch record write on a connection Postgres has dropped. Dropped while it
waited in the pool, the connection is found closed when it is taken (its socket has the end of
the stream to read) and replaced; dropped after that, the statement fails with a disconnect and
the retry stores the record. Either way the record is stored once, numbered after the last."""

import logging
import uuid
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Session, sessionmaker

from core.db import _autocommit_twin, one_statement, open_connection, transaction
from core.settings import Settings
from core.stream import MetricsStream
from tests.conftest import wait_for
from tests.service.test_repositories import make_job, record
from worker.service import WorkerContext, store_records


def terminate(sessions: sessionmaker[Session], pid: int) -> None:
    with transaction(sessions) as session:
        assert session.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


def stored_positions(sessions: sessionmaker[Session], job_id: object) -> list[tuple[int, int]]:
    with sessions() as session:
        rows = session.execute(
            text("SELECT seq, position FROM records WHERE job_id = :job ORDER BY seq"),
            {"job": job_id},
        ).all()
    return [(row[0], row[1]) for row in rows]


Written = tuple[WorkerContext, uuid.UUID, uuid.UUID]


@pytest.fixture
def written(
    test_settings: Settings, sessions: sessionmaker[Session], stream: MetricsStream
) -> Written:
    """A job whose run has its first record stored, on the statement pool's one connection."""
    ctx = WorkerContext(settings=test_settings, sessions=sessions, stream=stream)
    job_id, (run_id, _) = make_job(sessions)
    assert [s.seq for s in store_records(job_id, [record(run_id, 1)], ctx)] == [1]
    return ctx, job_id, run_id


def test_a_connection_dropped_in_the_pool_is_replaced_when_taken(
    written: Written, sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    ctx, job_id, run_id = written
    # the one connection of this engine's statement pool, as the write left it
    with one_statement(sessions) as connection:
        pid = connection.scalar(text("SELECT pg_backend_pid()"))
        driver = connection.connection.driver_connection
    terminate(sessions, pid)
    wait_for("the backend's end to reach the socket", lambda: not open_connection(driver))

    with caplog.at_level(logging.WARNING, logger="worker.service"):
        stored = store_records(job_id, [record(run_id, 2)], ctx)

    assert [s.seq for s in stored] == [2]
    assert not any("Postgres unreachable" in r.getMessage() for r in caplog.records)
    assert stored_positions(sessions, job_id) == [(1, 1), (2, 2)]
    with one_statement(sessions) as connection:
        assert connection.scalar(text("SELECT pg_backend_pid()")) != pid


def test_a_record_written_on_a_connection_dropped_after_it_was_taken_is_retried_once(
    written: Written, sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    ctx, job_id, run_id = written

    def drop_it(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        """After the pool's own check: the connection dies between that and the statement."""
        pid = dbapi_connection.info.backend_pid
        terminate(sessions, pid)
        wait_for("the backend's end", lambda: not open_connection(dbapi_connection))

    event.listen(_autocommit_twin(sessions), "checkout", drop_it, once=True)
    with caplog.at_level(logging.WARNING, logger="worker.service"):
        stored = store_records(job_id, [record(run_id, 2)], ctx)

    assert [s.seq for s in stored] == [2]
    assert any("Postgres unreachable" in r.getMessage() for r in caplog.records)
    assert stored_positions(sessions, job_id) == [(1, 1), (2, 2)]
