"""Fuzzing: schemathesis generates requests from the OpenAPI schema (bounded, authenticated)
against the real app on uvicorn with real Postgres and Redis. No request may cause a 5xx,
every response must match the schema (status, content type, headers, body), and every request
the schema calls valid must be accepted (positive-data acceptance): the schema tells the truth.

What no JSON schema can state is stated in the schema's descriptions and kept out of the
generated requests here, each by its own rule: a job's model must fit its dataset (and an
upload it names must exist); its loss, task and target metric must fit the dataset's task;
a job's runs (optimizers x batch sizes x seeds) are within the service's limit; a tuned
comparison's rules across fields (`tuning_rules_hold`), a range test's
(`lr_range_rules_hold`) and a score's target naming one of its jobs; an
Idempotency-Key is not reused for another body; and what an uploaded file holds is beyond a
schema (a positive case sends a sound file; tests/service/test_uploads.py checks what files
are refused). State the fuzzer cannot know (a job's arms, the metrics its task records,
another owner's runs) is answered 404/409, which count as accepted."""

import csv
import hashlib
import io
import json
import time
import uuid
from typing import Any

import numpy as np
import pytest
import requests
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from pydantic import TypeAdapter
from sqlalchemy.orm import Session, sessionmaker

from core.architectures import ModelSpec, UploadedModelSpec, check_model_fits
from core.datasets import DatasetSpec, UploadedDatasetSpec
from core.db import transaction
from core.kinds.train.spec import CROSS_ENTROPY, TASK_METRICS
from core.kinds.tune.search import SearchSpace, grid_levels
from core.models import RunStatus
from core.optimizers import SCHEDULE_PARAMS
from core.repositories import JobRepository, RunRepository
from core.settings import Settings
from core.stream import MetricsStream, make_redis
from tests.conftest import KEYS
from tests.service.test_api import record, store, submit, worker_context

pytestmark = pytest.mark.fuzz

EXAMPLES = 100  # per operation at most: over 2,000 generated requests in all
MAX_RUNS = 64  # the rig's OPTARENA_MAX_RUNS_PER_JOB (the default)


MODEL: TypeAdapter[Any] = TypeAdapter(ModelSpec)
DATASET: TypeAdapter[Any] = TypeAdapter(DatasetSpec)


def tuning_rules_hold(body: dict[str, Any]) -> bool:
    """The rules of a tuned comparison that JSON Schema cannot state, each by itself: a
    range's low < high and distinct choices; an argument searched is not also given; a
    schedule's argument only of the schedule given (not after Keras 2's decay); equal
    budgets unless allowed, one number per optimizer; tuning and final seeds disjoint;
    rungs before the last epoch; a grid the trials fill; selection on validation data."""
    tuning = body.get("tuning") or {}
    optimizers = [o if isinstance(o, dict) else {"name": o} for o in body.get("optimizers", [])]
    for optimizer in optimizers:
        schedule = optimizer.get("learning_rate")
        for key, dist in (optimizer.get("search") or {}).items():
            if "from_range_test" in dist:
                return False  # a range test the fuzzer cannot have run (tested in test_kinds)
            ((name, values),) = dist.items()
            if name != "choice" and not values[0] < values[1]:
                return False
            if name == "choice" and len({repr(v) for v in values}) < len(values):
                return False
            head, _, tail = key.partition(".")
            if not tail and key in optimizer:
                return False
            if head == "learning_rate" and optimizer.get("decay"):
                return False
            if tail and not (
                isinstance(schedule, dict)
                and tail in SCHEDULE_PARAMS.get(schedule.get("schedule"), {})
            ):
                return False
            if not tail and key == "learning_rate" and isinstance(schedule, dict):
                return False
    trials = tuning.get("trials", 16)
    counts = (
        trials
        if isinstance(trials, list)
        else [trials if o.get("search") else 1 for o in optimizers]
    )
    if len(counts) != len(optimizers):
        return False
    if len(set(counts)) > 1 and not tuning.get("allow_unequal_budgets"):
        return False
    tuning_seeds = tuning.get("tuning_seeds", [0])
    final_seeds = tuning.get("final_seeds", [1, 2, 3, 4, 5])
    if set(tuning_seeds) & set(final_seeds):
        return False
    if len(set(tuning_seeds)) < len(tuning_seeds) or len(set(final_seeds)) < len(final_seeds):
        return False  # 225 and 225.0: one number, which JSON Schema's generators may miss
    epochs = body.get("epochs", 10)
    last = max(epochs) if isinstance(epochs, list) else epochs
    if any(r >= last for r in (tuning.get("prune") or {}).get("rungs", [])):
        return False
    if tuning.get("sampler") == "grid":
        for optimizer, n in zip(optimizers, counts, strict=True):
            space = TypeAdapter(SearchSpace).validate_python(optimizer.get("search") or {})
            if isinstance(grid_levels(space, n), str):
                return False
    dataset = DATASET.validate_python(body.get("dataset", {"name": "digits"}))
    select = tuning.get("select_by") or TASK_METRICS[dataset.info().task][0]
    return (
        getattr(dataset, "validation_split", 0) > 0
        and select.startswith("val_")
        and (select in TASK_METRICS[dataset.info().task])
    )


def lr_range_rules_hold(body: dict[str, Any]) -> bool:
    """A range test's rules JSON Schema cannot state: max above min; no optimizer gives a
    learning rate (the test sets it)."""
    test = body.get("lr_range") or {}
    if not test.get("min", 1e-7) < test.get("max", 10.0):
        return False
    optimizers = [o for o in body.get("optimizers", []) if isinstance(o, dict)]
    return not any({"learning_rate", "lr", "decay"} & o.keys() for o in optimizers)


def tune_total(body: dict[str, Any]) -> int:
    tuning = body.get("tuning") or {}
    trials = tuning.get("trials", 16)
    optimizers = body.get("optimizers") or []
    counts = trials if isinstance(trials, list) else [trials] * len(optimizers)
    return sum(counts) * len(tuning.get("tuning_seeds", [0])) + len(optimizers) * len(
        tuning.get("final_seeds", [1, 2, 3, 4, 5])
    )


def fits(body: Any) -> bool:
    """Whether a generated training job's model fits its dataset (a rule across two fields)."""
    if not isinstance(body, dict) or "objective" in body:
        return True
    implied = [k for k in ("lr_range", "tuning") if k in body]
    kind = body.get(
        "kind", {"lr_range": "lr_range", "tuning": "tune"}.get(next(iter(implied), ""), "train")
    )
    if kind not in ("train", "tune", "lr_range"):
        return True
    if kind == "lr_range" and not lr_range_rules_hold(body):
        return False

    try:
        model = MODEL.validate_python(body.get("model", {"preset": "mlp"}))
        dataset = DATASET.validate_python(body.get("dataset", {"name": "digits"}))
        if isinstance(model, UploadedModelSpec) or isinstance(dataset, UploadedDatasetSpec):
            return False  # an upload the fuzzer cannot have made (tested in test_uploads)
        check_model_fits(model, dataset.info().input_shape)
    except ValueError:
        return False
    # The loss, the task and the target's metric must fit the dataset's task.
    info = dataset.info()
    target = body.get("target") or {}
    if kind == "tune" and (not tuning_rules_hold(body) or tune_total(body) > MAX_RUNS):
        return False
    return not (
        body.get("task") not in (None, info.task)
        or (info.task == "regression" and body.get("loss") in CROSS_ENTROPY)
        or (body.get("loss") == "binary_crossentropy" and info.num_classes != 2)
        or target.get("metric", "val_accuracy") not in TASK_METRICS[info.task]
    )


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


def dataset_file(form: dict[str, Any]) -> bytes:
    """A sound dataset for the generated form: a CSV whose label column is the one named (all
    values class labels, so any column the label names works), else an .npz."""
    if "label" in form:
        label = str(form["label"])
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["a", "b", label])
        writer.writerows([i % 2, (i // 2) % 2, i % 3] for i in range(12))
        return out.getvalue().encode()
    arrays = io.BytesIO()
    np.savez(arrays, x_train=np.eye(4, dtype="float32"), y_train=np.array([0, 1, 0, 1]))
    return arrays.getvalue()


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
    live_url: str,
    client: TestClient,
    sessions: sessionmaker[Session],
    test_settings: Settings,
    keras_file: bytes,
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
        if positive and case.path.startswith("/scores") and isinstance(case.query, dict):
            # a workload's target names one of the workloads (a rule across two parameters)
            def listed(name: str) -> list[str]:
                value = case.query.get(name)
                return [
                    str(v) for v in (value if isinstance(value, list) else [value] if value else [])
                ]

            jobs = {j.lower() for j in listed("job_id")}
            return all(t.partition(":")[0].lower() in jobs for t in listed("target"))
        return not (positive and case.path == "/jobs" and case.method == "POST") or fits(case.body)

    @schema.hook
    def map_case(context: Any, case: Any) -> Any:
        positive = case.meta is not None and case.meta.generation.mode.is_positive
        if not positive or not isinstance(case.body, dict):
            return case
        if case.method == "POST" and case.path in ("/datasets", "/models"):
            # What a file holds is beyond a schema (any bytes are a binary string): a
            # positive case sends a sound file, with the generated form fields (a form
            # cannot carry a null: a field left null is left out).
            for empty in [k for k, v in case.body.items() if v is None]:
                del case.body[empty]
            case.body["file"] = keras_file if case.path == "/models" else dataset_file(case.body)
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
