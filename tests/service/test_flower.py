"""Flower, as the monitoring profile runs it: `python -m worker.flower` on the real broker,
behind basic auth, and refusing to start without a password."""

import os
import subprocess
import sys
import uuid

import httpx
import pytest

from tests.conftest import REDIS_URL, ROOT, wait_for
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.service


def flower_env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "OPTARENA_REDIS_URL": REDIS_URL,
        "OPTARENA_TASK_QUEUE": f"optarena.flower.{uuid.uuid4().hex[:8]}",
        "OPTARENA_LOG_FORMAT": "json",
        **extra,
    }


def test_flower_serves_the_broker_behind_basic_auth(tmp_path: object) -> None:
    port = free_port()
    env = flower_env(OPTARENA_FLOWER_PORT=str(port), OPTARENA_FLOWER_PASSWORD="s3cret")
    env.pop("OPTARENA_FLOWER_USER", None)
    flower = subprocess.Popen(
        [sys.executable, "-m", "worker.flower"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if flower.poll() is not None:
            raise AssertionError(flower.stdout.read().decode() if flower.stdout else "exited")
        try:
            return httpx.get(f"{url}/healthcheck", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for("flower to answer", answers, timeout=120, every=0.3)
        assert httpx.get(f"{url}/api/workers", timeout=10).status_code == 401
        seen = httpx.get(f"{url}/api/workers", auth=("admin", "s3cret"), timeout=30)
        assert seen.status_code == 200 and isinstance(seen.json(), dict)
        wrong = httpx.get(f"{url}/api/workers", auth=("admin", "guess"), timeout=10)
        assert wrong.status_code == 401
    finally:
        flower.terminate()
        flower.wait(timeout=30)


def test_flower_refuses_to_start_without_a_password() -> None:
    env = flower_env()
    env.pop("OPTARENA_FLOWER_PASSWORD", None)
    refused = subprocess.run(
        [sys.executable, "-m", "worker.flower"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0 and "OPTARENA_FLOWER_PASSWORD" in refused.stderr
