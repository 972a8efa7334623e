"""Claims, heartbeats, hand-backs and the reaper, against real Postgres."""

import uuid

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from core.db import transaction
from core.models import JobStatus, RunStatus
from core.reaper import reap
from core.repositories import JobRepository, RunRepository
from tests.service.test_repositories import make_job


def age_heartbeat(sessions: sessionmaker[Session], run_id: uuid.UUID, seconds: int) -> None:
    with transaction(sessions) as session:
        session.execute(
            text("UPDATE runs SET heartbeat_at = now() - make_interval(secs => :s) WHERE id = :id"),
            {"s": seconds, "id": run_id},
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


def test_a_hand_back_queues_the_run_without_spending_an_attempt(
    sessions: sessionmaker[Session],
) -> None:
    _, (run_id, _) = make_job(sessions)
    claim(sessions, run_id)
    with transaction(sessions) as session:
        assert RunRepository(session).hand_back(run_id, attempt=1)
    with sessions() as session:
        run = RunRepository(session).get(run_id)
        assert run is not None
        assert run.status == RunStatus.QUEUED and run.handbacks == 1 and run.heartbeat_at is None
    assert claim(sessions, run_id) == 2


def test_the_reaper_requeues_stale_runs_and_fails_them_after_max_attempts(
    sessions: sessionmaker[Session],
) -> None:
    job_id, (stale, alive) = make_job(sessions)
    claim(sessions, stale)
    claim(sessions, alive)
    age_heartbeat(sessions, stale, 120)
    reaped = reap(sessions, stale_after=30, max_attempts=2)
    assert reaped.requeued == [stale] and reaped.failed == []
    run_status, error = status(sessions, stale)
    assert run_status == RunStatus.QUEUED and error is not None and "stopped beating" in error
    assert status(sessions, alive)[0] == RunStatus.RUNNING
    assert reap(sessions, stale_after=30, max_attempts=2).requeued == []  # nothing stale now

    claim(sessions, stale)  # attempt 2 of 2 dies too
    age_heartbeat(sessions, stale, 120)
    reaped = reap(sessions, stale_after=30, max_attempts=2)
    assert reaped.failed == [stale]
    run_status, error = status(sessions, stale)
    assert run_status == RunStatus.FAILED
    assert error is not None and "died during each of 2 attempts" in error and "host:1" in error
    with transaction(sessions) as session:
        RunRepository(session).finish(alive, status=RunStatus.SUCCEEDED)
        job = JobRepository(session).settle(job_id)
        assert job is not None and job.status == JobStatus.FAILED
