"""The real API's and worker's logs: JSON lines, each with the job, run, attempt and worker
it is about, so a log pipeline finds every line of a run."""

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.e2e.conftest import Service

pytestmark = pytest.mark.e2e


def json_lines(path: Path) -> list[dict[str, Any]]:
    """The log's JSON lines (TensorFlow's native code writes a few plain ones to stderr)."""
    found = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


def test_every_line_of_a_run_names_its_job_run_attempt_and_worker(service: Service) -> None:
    job = service.submit({"optimizers": ["sgd"], "epochs": 1, "name": "logged"})
    done = service.wait(job["id"])
    assert done["status"] == "succeeded"
    [run] = done["runs"]
    worker = json_lines(service.logs)
    assert worker, service.logs.read_text()[-2000:]
    assert all(set(line) >= {"job_id", "run_id", "attempt", "worker", "event"} for line in worker)
    mine = [line for line in worker if line["run_id"] == run["id"]]
    assert mine, worker[-5:]
    claimed = [line for line in mine if line["job_id"] is not None]
    assert claimed and all(line["job_id"] == job["id"] for line in claimed)
    assert all(line["attempt"] == 1 for line in claimed)
    [worker_name] = {line["worker"] for line in mine}  # the one pool process that trained it
    assert worker_name and worker_name.split(":")[1].isdigit()
    assert any(f"run {run['id']}: succeeded" in line["event"] for line in mine)


def test_a_request_line_names_the_job_it_is_about(service: Service) -> None:
    job = service.submit({"optimizers": ["sgd"], "epochs": 1, "name": "asked about"})
    assert service.http.get(f"/jobs/{job['id']}/metrics").status_code == 200
    api_log = service.logs.parent / "api.log"

    def asked() -> list[dict[str, Any]]:
        return [
            line
            for line in json_lines(api_log)
            if line["event"] == "request" and line["path"] == f"/jobs/{job['id']}/metrics"
        ]

    [line] = wait_for("the request's log line", asked, timeout=60)
    assert line["job_id"] == job["id"] and line["status"] == 200 and line["method"] == "GET"
    assert line["ms"] >= 0 and line["service"] == "api" and line["level"] == "info"
