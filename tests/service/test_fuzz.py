"""Fuzzing: schemathesis generates requests from the OpenAPI schema (bounded, authenticated)
against the real app on uvicorn with real Postgres and Redis. No request may cause a 5xx, and
every response must match the schema: status code, content type, headers and body."""

import time
import uuid
from typing import Any

import pytest
import requests
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance
from sqlalchemy.orm import Session, sessionmaker

from core.db import transaction
from core.models import RunStatus
from core.repositories import JobRepository, RunRepository
from core.settings import Settings
from core.stream import MetricsStream, make_redis
from tests.conftest import KEYS
from tests.service.test_api import record, submit, worker_context
from worker.service import store_record

pytestmark = pytest.mark.fuzz

EXAMPLES = 50  # per operation


def fuzz(operation: Any, tried: dict[str, int]) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case: Any) -> None:
        tried[operation.label] += 1
        # A fresh session each time: no cookie from POST /session leaks into the next case.
        with requests.Session() as session:
            # Business rules (known optimizer names, existing run ids, cursor syntax) make
            # some schema-valid requests a 422 with the reason; that is not a failure here.
            case.call_and_validate(
                session=session, timeout=30, excluded_checks=[positive_data_acceptance]
            )

    check()


def test_no_generated_request_breaks_the_api_or_its_schema(
    live_url: str, client: TestClient, sessions: sessionmaker[Session], test_settings: Settings
) -> None:
    # A job of the tester's with records, so half the generated job ids reach past the 404.
    job = submit(client, {"optimizers": ["sgd", "adam"], "epochs": 2, "seeds": [0, 1]})
    with transaction(sessions) as session:
        for run in job["runs"]:
            RunRepository(session).claim(uuid.UUID(run["id"]), worker="fuzz")
    ctx = worker_context(
        test_settings,
        sessions,
        MetricsStream(make_redis(test_settings.redis_url), maxlen=100, ttl_seconds=60),
    )
    for epoch in (1, 2):
        for run in job["runs"]:
            store_record(uuid.UUID(job["id"]), record(run["id"], epoch, 0.5 + epoch / 10), ctx)
    with transaction(sessions) as session:  # ended, so its event stream replays and closes
        for run in job["runs"]:
            RunRepository(session).finish(uuid.UUID(run["id"]), status=RunStatus.SUCCEEDED)
        JobRepository(session).settle(uuid.UUID(job["id"]))
    schema = schemathesis.openapi.from_url(f"{live_url}/openapi.json")

    @schema.hook
    def map_path_parameters(context: Any, path_parameters: Any) -> Any:
        value = (path_parameters or {}).get("job_id")
        if isinstance(value, str) and sum(map(ord, value)) % 2 == 0:
            path_parameters["job_id"] = job["id"]
        return path_parameters

    @schema.auth()
    class Bearer:
        """The tester's key on every case; schemathesis also sends each 2xx case again
        without it, and with a wrong one, and expects a 401."""

        def get(self, case: Any, context: Any) -> str:
            return KEYS["tester"][1]

        def set(self, case: Any, data: str, context: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    tried: dict[str, int] = {}
    seconds: dict[str, float] = {}
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        tried[operation.label] = 0
        started = time.monotonic()
        try:
            fuzz(operation, tried)
        except (Exception, BaseExceptionGroup) as error:  # every operation's failure, together
            failures.append(f"{operation.label}: {error}")
        seconds[operation.label] = round(time.monotonic() - started, 1)
    total = sum(tried.values())
    print(f"\nschemathesis: {total} requests over {len(tried)} operations; seconds: {seconds}")
    assert not failures, "\n\n".join(failures)
    assert len(tried) >= 12 and total >= 10 * len(tried), tried
