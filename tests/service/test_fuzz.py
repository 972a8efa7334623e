"""Fuzzing: schemathesis generates requests from the OpenAPI schema (bounded, authenticated)
against the real app on uvicorn with real Postgres and Redis. No request may cause a 5xx,
every response must match the schema (status, content type, headers, body), and every request
the schema calls valid must be accepted (positive-data acceptance): the schema tells the truth.

What no JSON schema can state is stated in the schema's descriptions and kept out of the
generated requests here, each by its own rule: a job's model must fit its dataset, a job's
runs (optimizers x batch sizes x seeds) are within the service's limit, and an
Idempotency-Key is not reused for another body. State the fuzzer cannot know (a job's arms,
another owner's runs) is answered 404/409, which count as accepted."""

import hashlib
import json
import time
import uuid
from typing import Any

import pytest
import requests
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from pydantic import TypeAdapter
from sqlalchemy.orm import Session, sessionmaker

from core.architectures import ModelSpec, check_model_fits
from core.datasets import DatasetSpec
from core.db import transaction
from core.models import RunStatus
from core.repositories import JobRepository, RunRepository
from core.settings import Settings
from core.stream import MetricsStream, make_redis
from tests.conftest import KEYS
from tests.service.test_api import record, store, submit, worker_context

pytestmark = pytest.mark.fuzz

EXAMPLES = 200  # per operation at most: over 2,000 generated requests in all
MAX_RUNS = 64  # the rig's OPTARENA_MAX_RUNS_PER_JOB (the default)


MODEL: TypeAdapter[Any] = TypeAdapter(ModelSpec)
DATASET: TypeAdapter[Any] = TypeAdapter(DatasetSpec)


def fits(body: Any) -> bool:
    """Whether a generated training job's model fits its dataset (a rule across two fields)."""
    if not isinstance(body, dict) or "objective" in body or body.get("kind", "train") != "train":
        return True
    try:
        model = MODEL.validate_python(body.get("model", {"preset": "mlp"}))
        dataset = DATASET.validate_python(body.get("dataset", {"name": "digits"}))
        check_model_fits(model, dataset.info().input_shape)
    except ValueError:
        return False
    return True


def within_run_limit(body: dict[str, Any]) -> dict[str, Any]:
    """The job with its sweep trimmed to the service's runs per job."""
    lists = [k for k in ("seeds", "batch_size") if isinstance(body.get(k), list)]

    def runs() -> int:
        product = len(body.get("optimizers") or [1])
        for key in lists:
            product *= max(1, len(body[key]))
        return product

    while runs() > MAX_RUNS:
        longest = max([*lists, "optimizers"], key=lambda k: len(body.get(k) or []))
        body[longest] = body[longest][: max(1, len(body[longest]) // 2)]
    return body


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
            case.call_and_validate(session=session, timeout=60)

    check()


def test_every_generated_request_is_answered_as_the_schema_says(
    live_url: str, client: TestClient, sessions: sessionmaker[Session], test_settings: Settings
) -> None:
    # A job of the tester's with records, so half the generated ids reach past the 404.
    job = submit(client, {"optimizers": ["sgd", "adam"], "epochs": 2, "seeds": [0, 1]})
    with transaction(sessions) as session:
        for run in job["runs"]:
            RunRepository(session).claim(uuid.UUID(run["id"]), worker="fuzz")
    ctx = worker_context(
        test_settings,
        sessions,
        MetricsStream(make_redis(test_settings.redis_url), maxlen=100, ttl_seconds=60),
    )
    store(job, [record(r["id"], e, 0.5 + e / 10) for e in (1, 2) for r in job["runs"]], ctx)
    with transaction(sessions) as session:  # ended, so its event stream replays and closes
        for run in job["runs"]:
            RunRepository(session).finish(uuid.UUID(run["id"]), status=RunStatus.SUCCEEDED)
        JobRepository(session).settle(uuid.UUID(job["id"]))
    run_ids = [r["id"] for r in job["runs"]]
    schema = schemathesis.openapi.from_url(f"{live_url}/openapi.json")

    def heads(value: str) -> bool:
        return sum(map(ord, value)) % 2 == 0

    @schema.hook
    def map_path_parameters(context: Any, path_parameters: Any) -> Any:
        value = (path_parameters or {}).get("job_id")
        if isinstance(value, str) and heads(value):
            path_parameters["job_id"] = job["id"]
        return path_parameters

    @schema.hook
    def filter_case(context: Any, case: Any) -> bool:
        positive = case.meta is not None and case.meta.generation.mode.is_positive
        return not (positive and case.path == "/jobs" and case.method == "POST") or fits(case.body)

    @schema.hook
    def map_case(context: Any, case: Any) -> Any:
        positive = case.meta is not None and case.meta.generation.mode.is_positive
        if not positive or not isinstance(case.body, dict):
            return case
        if case.path == "/jobs" and case.method == "POST":
            case.body = within_run_limit(case.body)
            for name, value in (case.headers or {}).items():
                if name.lower() == "idempotency-key":
                    canonical = json.dumps(case.body, sort_keys=True) + str(value)
                    case.headers[name] = hashlib.sha256(canonical.encode()).hexdigest()
        if case.path == "/comparisons" and isinstance(case.body.get("run_ids"), list):
            case.body["run_ids"] = [
                run_ids[i % len(run_ids)] if heads(str(r)) else r
                for i, r in enumerate(case.body["run_ids"])
            ]
        return case

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
    assert len(tried) >= 16 and total >= 2000, tried
