"""The epoch-by-epoch record write on a connection Postgres has dropped: the statement goes
out unpinged (one round trip a record), fails with a disconnect, and the retry stores the
record once, numbered after the last."""

import logging

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from core.db import one_statement, transaction
from core.settings import Settings
from core.stream import MetricsStream
from tests.service.test_repositories import make_job, record
from worker.service import WorkerContext, store_records


def test_a_record_written_on_a_dropped_connection_is_retried_and_stored_once(
    test_settings: Settings,
    sessions: sessionmaker[Session],
    stream: MetricsStream,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ctx = WorkerContext(settings=test_settings, sessions=sessions, stream=stream)
    job_id, (run_id, _) = make_job(sessions)
    assert [s.seq for s in store_records(job_id, [record(run_id, 1)], ctx)] == [1]
    # the one connection of this engine's statement pool, as the write left it
    with one_statement(sessions) as session:
        pid = session.scalar(text("SELECT pg_backend_pid()"))
    with transaction(sessions) as session:
        assert session.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    with caplog.at_level(logging.WARNING, logger="worker.service"):
        stored = store_records(job_id, [record(run_id, 2)], ctx)

    assert [s.seq for s in stored] == [2]
    assert any("Postgres unreachable" in r.getMessage() for r in caplog.records)
    with sessions() as session:
        rows = session.execute(
            text("SELECT seq, position FROM records WHERE job_id = :job ORDER BY seq"),
            {"job": job_id},
        ).all()
    assert [tuple(row) for row in rows] == [(1, 1), (2, 2)]
