"""Start what compose starts: the migration, the API and one worker, as real processes."""

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REDIS_URL, ROOT, create_database, drop_database


@dataclass
class Service:
    url: str
    http: httpx.Client
    logs: Path
    key: str
    env: dict[str, str]

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post("/jobs", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def wait(self, job_id: str, *, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.http.get(f"/jobs/{job_id}").json()
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return job
            time.sleep(0.2)
        raise AssertionError(
            f"job {job_id} did not end in {timeout}s; worker log:\n{self.logs.read_text()[-3000:]}"
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    name = f"optarena_e2e_{os.getpid()}"
    database_url = create_database(name)
    port = free_port()
    logs = tmp_path_factory.mktemp("logs")
    env = {
        **os.environ,
        "OPTARENA_DATABASE_URL": database_url,
        "OPTARENA_REDIS_URL": REDIS_URL,
        "OPTARENA_TASK_QUEUE": f"optarena.e2e.{uuid.uuid4().hex[:8]}",
        "OPTARENA_API_PORT": str(port),
        "OPTARENA_DATASET_CACHE_DIR": str(tmp_path_factory.mktemp("datasets")),
        "OPTARENA_CANCEL_POLL_SECONDS": "0.1",
        "OPTARENA_STREAM_TTL_SECONDS": "2",
    }
    bin_dir = Path(sys.executable).parent
    subprocess.run([str(bin_dir / "alembic"), "upgrade", "head"], cwd=ROOT, env=env, check=True)
    # The first key, made the way the README says.
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
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if http.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError((logs / "api.log").read_text())
            time.sleep(0.1)
        yield Service(url=url, http=http, logs=logs / "worker.log", key=key, env=env)
    finally:
        http.close()
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        drop_database(name)
