"""GET /jobs/{id}/events over real HTTP: live, replayed, resumed, and cheap to abandon."""

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from optarena_client import Client, Event
from sqlalchemy.orm import Session, sessionmaker

from core.db import transaction
from core.models import RunStatus
from core.repositories import JobRepository, RunRepository
from core.settings import Settings
from core.stream import MetricsStream
from tests.conftest import KEYS, auth, wait_for
from tests.service.test_api import record, store, submit, worker_context


def finish(sessions: sessionmaker[Session], job: dict[str, Any]) -> None:
    with transaction(sessions) as session:
        for run in job["runs"]:
            RunRepository(session).finish(uuid.UUID(run["id"]), status=RunStatus.SUCCEEDED)
        JobRepository(session).settle(uuid.UUID(job["id"]))


def start(sessions: sessionmaker[Session], job: dict[str, Any]) -> None:
    with transaction(sessions) as session:
        for run in job["runs"]:
            RunRepository(session).claim(uuid.UUID(run["id"]), worker="test")
        JobRepository(session).settle(uuid.UUID(job["id"]))


def events(url: str, job_id: str, into: list[Event] | None = None) -> list[Event]:
    collected = [] if into is None else into
    with Client(url, api_key=KEYS["tester"][1]) as client:
        for event in client.events(job_id, retry_seconds=0.05, max_retries=0):
            collected.append(event)
    return collected


def statuses_of(seen: list[Event]) -> list[str]:
    return [e.data["status"] for e in list(seen) if e.event == "run"]


@pytest.fixture
def ctx(test_settings: Settings, sessions: sessionmaker[Session], stream: MetricsStream) -> Any:
    return worker_context(test_settings, sessions, stream)


def test_an_ended_job_is_replayed_then_closed_and_resumes_after_an_event_id(
    client: TestClient, live_url: str, sessions: sessionmaker[Session], ctx: Any
) -> None:
    job = submit(client, {"optimizers": ["sgd", "adam"], "epochs": 2})
    store(job, [record(run["id"], e, 0.5) for run in job["runs"] for e in (1, 2)], ctx)
    finish(sessions, job)
    replay = events(live_url, job["id"])
    assert [e.event for e in replay] == ["run", "run", *["record"] * 4, "done"]
    assert [e.id for e in replay if e.event == "record"] == ["1", "2", "3", "4"]
    assert replay[-1].data["status"] == "succeeded"
    with Client(live_url, api_key=KEYS["tester"][1]) as c:
        resumed = list(c.events(job["id"], after="2"))
    assert [e.id for e in resumed if e.event == "record"] == ["3", "4"]
    header = httpx.get(
        f"{live_url}/jobs/{job['id']}/events", headers={"last-event-id": "3", **auth()}, timeout=10
    )
    assert header.text.count("event: record") == 1 and "id: 4" in header.text


def test_live_records_arrive_once_in_order_with_run_changes_and_done(
    client: TestClient, live_url: str, sessions: sessionmaker[Session], ctx: Any
) -> None:
    job = submit(client, {"optimizers": ["sgd", "adam"], "epochs": 3})
    seen: list[Event] = []
    reader = threading.Thread(target=events, args=(live_url, job["id"], seen))
    reader.start()
    wait_for("the stream to open", lambda: len(seen) >= 2)  # the two queued runs
    start(sessions, job)
    # Run events report the statuses each look finds; wait until this one is seen.
    wait_for("the runs to be seen running", lambda: "running" in statuses_of(seen))
    for epoch in (1, 2, 3):
        for run in job["runs"]:
            store(job, [record(run["id"], epoch, 0.1 * epoch)], ctx)
    finish(sessions, job)
    reader.join(timeout=60)
    assert not reader.is_alive()
    epochs = [e for e in seen if e.event == "record"]
    assert [e.id for e in epochs] == [str(i) for i in range(1, 7)]
    assert [(e.data["run_id"], e.data["epoch"]) for e in epochs] == [
        (run["id"], epoch) for epoch in (1, 2, 3) for run in job["runs"]
    ]
    statuses = statuses_of(seen)
    assert statuses[:2] == ["queued", "queued"] and statuses[-2:] == ["succeeded", "succeeded"]
    assert "running" in statuses and seen[-1].event == "done"


def blocked_reads(redis_client: redis.Redis) -> int:
    """Connections blocked in an XREAD right now (flag b), not merely idle after one."""
    return sum(
        1
        for c in redis_client.client_list()
        if c.get("cmd") == "xread" and "b" in str(c.get("flags", ""))
    )


# Streams block 10 minutes per look here: only cancelling the read on disconnect frees it
# within the test's deadline.
@pytest.mark.parametrize("live_url", [600_000], indirect=True)
def test_watchers_of_a_job_share_one_redis_read_and_leave_none_behind(
    client: TestClient, live_url: str, sessions: sessionmaker[Session], redis_client: redis.Redis
) -> None:
    job = submit(client, {"optimizers": ["sgd"], "epochs": 3})
    start(sessions, job)
    baseline = blocked_reads(redis_client)
    streams: list[Iterator[Any]] = []
    http = httpx.Client(base_url=live_url, timeout=10, headers=auth())
    contexts = [http.stream("GET", f"/jobs/{job['id']}/events") for _ in range(30)]
    for context in contexts:
        response = context.__enter__()
        streams.append(response.iter_lines())
        next(streams[-1])  # the first run event: the stream is open and waiting
    # Thirty watchers of one job share one read: the job's tail in this API process.
    wait_for("the tail's blocked read", lambda: blocked_reads(redis_client) >= baseline + 1)
    assert blocked_reads(redis_client) == baseline + 1
    for context in contexts:
        context.__exit__(None, None, None)
    http.close()
    wait_for("the reads to go", lambda: blocked_reads(redis_client) <= baseline, timeout=120)


def test_unknown_jobs_and_bad_cursors_are_refused(client: TestClient, live_url: str) -> None:
    assert httpx.get(f"{live_url}/jobs/{uuid.uuid4()}/events", headers=auth()).status_code == 404
    job = submit(client, {"optimizers": ["sgd"]})
    url = f"{live_url}/jobs/{job['id']}/events"
    assert httpx.get(url, headers={"last-event-id": "abc", **auth()}).status_code == 422
    assert httpx.get(url, params={"after": "-1"}, headers=auth()).status_code == 422
    ahead = httpx.get(url, params={"after": 5}, headers=auth())
    assert ahead.status_code == 409 and "beyond" in ahead.json()["detail"]


class DropOnce(httpx.HTTPTransport):
    """A network that cuts the first event stream after a few lines."""

    def __init__(self, after_lines: int) -> None:
        super().__init__()
        self.after_lines = after_lines
        self.dropped = False
        self.last_event_ids: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if not request.url.path.endswith("/events"):
            return response
        self.last_event_ids.append(request.headers.get("last-event-id"))
        if self.dropped:
            return response
        self.dropped = True
        inner, limit = response.stream, self.after_lines

        class Cut(httpx.SyncByteStream):
            def __iter__(self) -> Iterator[bytes]:
                lines = 0
                for chunk in inner:  # type: ignore[union-attr]
                    for line in chunk.split(b"\n"):
                        yield line + b"\n"
                        lines += 1
                        if lines >= limit:
                            raise httpx.ReadError("connection reset")

        return httpx.Response(response.status_code, headers=response.headers, stream=Cut())


def test_the_client_resumes_a_dropped_stream_without_gap_or_duplicate(
    client: TestClient, live_url: str, sessions: sessionmaker[Session], ctx: Any
) -> None:
    job = submit(client, {"optimizers": ["sgd", "adam"], "epochs": 3})
    store(job, [record(run["id"], e, 0.5) for e in (1, 2, 3) for run in job["runs"]], ctx)
    finish(sessions, job)
    network = DropOnce(after_lines=12)  # two run events, then into the epochs
    with Client(live_url, api_key=KEYS["tester"][1], transport=network) as c:
        seen = list(c.events(job["id"], retry_seconds=0.01))
    assert network.dropped and len(network.last_event_ids) == 2
    assert network.last_event_ids[0] is None and network.last_event_ids[1] is not None
    assert [e.id for e in seen if e.event == "record"] == [str(i) for i in range(1, 7)]


def test_an_idle_stream_gets_heartbeats(client: TestClient, live_url: str) -> None:
    job = submit(client, {"optimizers": ["sgd"]})  # queued: nothing will happen
    lines: list[str] = []
    # The rig pings every second; nothing else arrives, so the first comment must be a ping
    # (the read timeout is generous: a slow machine only makes it come later).
    with httpx.stream(
        "GET", f"{live_url}/jobs/{job['id']}/events", timeout=120, headers=auth()
    ) as response:
        for line in response.iter_lines():
            lines.append(line)
            if line.startswith(":"):
                break
    assert lines[-1].startswith(": ping"), lines


def test_streams_of_many_jobs_share_one_look_at_postgres(
    client: TestClient, sessions: sessionmaker[Session], db_engine: Any
) -> None:
    """Twenty jobs' streams asking at once are answered by one look (two queries), and asking
    again within the look's age asks Postgres nothing."""
    import asyncio

    from sqlalchemy import event

    from api.routes.events import Snapshots

    jobs = [submit(client, {"optimizers": ["sgd", "adam"], "epochs": 2}) for _ in range(20)]
    start(sessions, jobs[0])
    gone = uuid.uuid4()
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(db_engine, "before_cursor_execute", count)
    try:
        snapshots = Snapshots(sessions, max_age=3600)  # nothing ages while the test runs
        ids = [uuid.UUID(job["id"]) for job in jobs] + [gone]

        async def ask() -> list[Any]:
            return await asyncio.gather(*(snapshots.get(i) for i in ids * 3))

        first = asyncio.run(ask())
        looked = len(statements)
        again = asyncio.run(ask())
    finally:
        event.remove(db_engine, "before_cursor_execute", count)
    assert looked == 2, statements
    assert len(statements) == looked  # the second round was answered from the first look
    assert first == again
    assert first[20] is None  # a job that is gone has no snapshot
    assert first[0].status == "running" and first[1].status == "queued"
    assert [run[1] for run in first[0].runs] == [0, 1]
    assert {run[2] for run in first[0].runs} == {"running"}
    assert first[0].metrics_seq == 0 and not first[0].finished
