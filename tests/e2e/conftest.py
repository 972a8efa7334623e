"""Start what compose starts: the migration, the API and one worker, as real processes."""

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REDIS_URL, ROOT, create_database, drop_database, wait_for
from worker.shutdown import children_of


@dataclass
class Service:
    url: str
    http: httpx.Client
    logs: Path
    key: str
    env: dict[str, str]
    worker: subprocess.Popen[bytes]

    def pool_process(self) -> int:
        """The worker's pool process (concurrency 1): the process that trains."""
        [pid] = wait_for("the worker's pool process", lambda: children_of(self.worker.pid))
        return pid

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post("/jobs", json=body)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def wait(self, job_id: str, *, timeout: float = 300) -> dict[str, Any]:
        def ended() -> dict[str, Any] | None:
            job: dict[str, Any] = self.http.get(f"/jobs/{job_id}").json()
            return job if job["status"] in ("succeeded", "failed", "cancelled") else None

        try:
            return wait_for(f"job {job_id} to end", ended, timeout=timeout, every=0.2)
        except AssertionError:
            raise AssertionError(
                f"job {job_id} did not end; worker log:\n{self.logs.read_text()[-3000:]}"
            ) from None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_service(name: str, tmp: Path, *, extra_path: Path | None = None) -> Iterator[Service]:
    """Migrate a database of its own, make the first key as the README says, and run the API
    and a worker on it; the rig sets every setting it depends on."""
    database_url = create_database(name)
    port = free_port()
    logs = tmp / "logs"
    logs.mkdir()
    env = {
        **os.environ,
        "OPTARENA_DATABASE_URL": database_url,
        "OPTARENA_REDIS_URL": REDIS_URL,
        "OPTARENA_TASK_QUEUE": f"optarena.e2e.{uuid.uuid4().hex[:8]}",
        "OPTARENA_API_PORT": str(port),
        "OPTARENA_DATASET_CACHE_DIR": str(tmp / "datasets"),
        "OPTARENA_ARTIFACTS_URL": str(tmp / "artifacts"),
        "OPTARENA_CANCEL_POLL_SECONDS": "0.1",
        "OPTARENA_STREAM_TTL_SECONDS": "2",
        "OPTARENA_RATE_LIMIT_PER_MINUTE": "0",
        "OPTARENA_MAX_ACTIVE_RUNS_PER_OWNER": "100000",
        "OPTARENA_WORKER_METRICS_PORT": str(free_port()),
        "OPTARENA_LOG_FORMAT": "json",
    }
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(extra_path), env.get("PYTHONPATH", "")])
    bin_dir = Path(sys.executable).parent
    subprocess.run([str(bin_dir / "alembic"), "upgrade", "head"], cwd=ROOT, env=env, check=True)
    made = subprocess.run(
        [str(bin_dir / "optarena"), "keys", "create", "--owner", "e2e"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = made.stdout.strip()
    assert key.startswith("oa_") and "shown only now" in made.stderr, made
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=ROOT,
            env=env,
            stdout=(logs / f"{module}.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        for module in ("api", "worker")
    ]
    url = f"http://127.0.0.1:{port}"
    http = httpx.Client(base_url=url, timeout=30, headers={"authorization": f"Bearer {key}"})

    def ready() -> bool:
        try:
            return http.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    try:
        try:
            wait_for("the API", ready, timeout=60)
        except AssertionError:
            raise AssertionError((logs / "api.log").read_text()) from None
        yield Service(
            url=url, http=http, logs=logs / "worker.log", key=key, env=env, worker=processes[1]
        )
    finally:
        http.close()
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        drop_database(name)


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    yield from start_service(f"optarena_e2e_{os.getpid()}", tmp_path_factory.mktemp("e2e"))
