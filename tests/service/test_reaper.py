"""Claims, heartbeats, hand-backs and the reaper, against real Postgres: every message they
cause waits in the outbox."""

import uuid

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from core.db import transaction
from core.models import JobStatus, RunStatus
from core.reaper import reap
from core.repositories import JobRepository, RunRepository
from tests.service.test_repositories import QUEUE, make_job


def age(sessions: sessionmaker[Session], sql: str, run_id: uuid.UUID, seconds: int) -> None:
    with transaction(sessions) as session:
        session.execute(text(sql), {"s": seconds, "id": run_id})


def age_heartbeat(sessions: sessionmaker[Session], run_id: uuid.UUID, seconds: int) -> None:
    age(
        sessions,
        "UPDATE runs SET heartbeat_at = now() - make_interval(secs => :s) WHERE id = :id",
        run_id,
        seconds,
    )


def claim(sessions: sessionmaker[Session], run_id: uuid.UUID, **kwargs: object) -> int | None:
    with transaction(sessions) as session:
        run = RunRepository(session).claim(run_id, worker="host:1", **kwargs)  # type: ignore[arg-type]
        return None if run is None else run.attempt


def status(sessions: sessionmaker[Session], run_id: uuid.UUID) -> tuple[RunStatus, str | None]:
    with sessions() as session:
        run = RunRepository(session).get(run_id)
        assert run is not None
        return run.status, run.error


def messages(sessions: sessionmaker[Session], run_id: uuid.UUID) -> int:
    with sessions() as session:
        return int(
            session.execute(
                text("SELECT count(*) FROM outbox WHERE run_id = :id"), {"id": run_id}
            ).scalar_one()
        )


def reap_now(sessions: sessionmaker[Session], **kwargs: object) -> object:
    return reap(sessions, stale_after=30, max_attempts=2, queue=QUEUE, **kwargs)  # type: ignore[arg-type]


def test_a_running_run_is_taken_again_only_when_its_heartbeat_is_stale_or_its_worker_dead(
    sessions: sessionmaker[Session],
) -> None:
    _, (run_id, _) = make_job(sessions)
    assert claim(sessions, run_id) == 1
    assert claim(sessions, run_id, stale_after=30) is None  # alive: a duplicate delivery
    age_heartbeat(sessions, run_id, 60)
    assert claim(sessions, run_id, stale_after=30) == 2
    assert claim(sessions, run_id, dead_worker="host:2") is None  # not the worker holding it
    assert claim(sessions, run_id, dead_worker="host:1") == 3


def test_heartbeats_and_outcomes_of_a_superseded_attempt_are_refused(
    sessions: sessionmaker[Session],
) -> None:
    job_id, (run_id, _) = make_job(sessions)
    claim(sessions, run_id)
    with transaction(sessions) as session:
        assert RunRepository(session).beat(run_id, attempt=1) == (True, False)
        JobRepository(session).request_cancel(JobRepository(session).get(job_id))  # type: ignore[arg-type]
        assert RunRepository(session).beat(run_id, attempt=1) == (True, True)
    age_heartbeat(sessions, run_id, 60)
    claim(sessions, run_id, stale_after=30)
    with transaction(sessions) as session:
        runs = RunRepository(session)
        assert runs.beat(run_id, attempt=1) == (False, False)
        assert not runs.finish(run_id, status=RunStatus.SUCCEEDED, attempt=1)
        assert runs.finish(run_id, status=RunStatus.SUCCEEDED, attempt=2)


def test_a_hand_back_queues_the_run_with_its_message_without_spending_an_attempt(
    sessions: sessionmaker[Session],
) -> None:
    _, (run_id, _) = make_job(sessions)
    claim(sessions, run_id)
    with transaction(sessions) as session:
        assert RunRepository(session).hand_back(run_id, attempt=1, queue=QUEUE)
        assert not RunRepository(session).hand_back(run_id, attempt=1, queue=QUEUE)
    with sessions() as session:
        run = RunRepository(session).get(run_id)
        assert run is not None
        assert run.status == RunStatus.QUEUED and run.handbacks == 1 and run.heartbeat_at is None
    assert messages(sessions, run_id) == 2  # the submit's, and the hand-back's
    assert claim(sessions, run_id) == 2


def test_the_reaper_requeues_stale_runs_and_fails_them_after_max_attempts(
    sessions: sessionmaker[Session],
) -> None:
    job_id, (stale, alive) = make_job(sessions)
    claim(sessions, stale)
    claim(sessions, alive)
    age_heartbeat(sessions, stale, 120)
    reaped = reap_now(sessions)
    assert reaped.requeued == [stale] and reaped.failed == []  # type: ignore[attr-defined]
    run_status, error = status(sessions, stale)
    assert run_status == RunStatus.QUEUED and error is not None and "stopped beating" in error
    assert messages(sessions, stale) == 2 and messages(sessions, alive) == 1
    assert status(sessions, alive)[0] == RunStatus.RUNNING
    assert reap_now(sessions).requeued == []  # type: ignore[attr-defined]

    claim(sessions, stale)  # attempt 2 of 2 dies too
    age_heartbeat(sessions, stale, 120)
    reaped = reap_now(sessions)
    assert reaped.failed == [stale]  # type: ignore[attr-defined]
    run_status, error = status(sessions, stale)
    assert run_status == RunStatus.FAILED
    assert error is not None and "died during each of 2 attempts" in error and "host:1" in error
    with transaction(sessions) as session:
        RunRepository(session).finish(alive, status=RunStatus.SUCCEEDED)
        job = JobRepository(session).settle(job_id)
        assert job is not None and job.status == JobStatus.FAILED


def test_a_queued_run_whose_message_was_lost_is_sent_again_once(
    sessions: sessionmaker[Session],
) -> None:
    _, (lost, waiting) = make_job(sessions)
    with transaction(sessions) as session:  # both were sent long ago; one still waits unsent
        session.execute(text("UPDATE outbox SET sent_at = now() - interval '2 hours'"))
        session.execute(text("UPDATE runs SET created_at = now() - interval '3 hours'"))
        session.execute(
            text("UPDATE outbox SET sent_at = NULL WHERE run_id = :id"), {"id": waiting}
        )
    assert reap_now(sessions, resend_after=3600).resent == [lost]  # type: ignore[attr-defined]
    assert messages(sessions, lost) == 2 and messages(sessions, waiting) == 1
    assert reap_now(sessions, resend_after=3600).resent == []  # type: ignore[attr-defined]
    claim(sessions, lost)  # a running run is the reaper's only when its heartbeat stops
    # ... and a message still waiting to be sent is never doubled, however old.
    assert reap_now(sessions, resend_after=0.001).resent == []  # type: ignore[attr-defined]
