"""A worker told to train on a GPU refuses to start, saying why, when its backend sees none."""

import json
import os
import subprocess
import sys

from tests.conftest import ROOT


def run(module: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"},
            "CUDA_VISIBLE_DEVICES": "",  # no GPU on any machine the test runs on
            **env,
        },
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_backend_says_what_it_sees() -> None:
    asked = run("worker.backend", OPTARENA_KERAS_BACKEND="tensorflow")
    assert asked.returncode == 0, asked.stderr
    assert json.loads(asked.stdout.strip().splitlines()[-1]) == {
        "backend": "tensorflow",
        "gpus": [],
    }


def test_a_worker_that_requires_a_gpu_and_sees_none_fails_at_start() -> None:
    # A broker nobody listens on: the worker must stop before it would try to reach one.
    started = run("worker", OPTARENA_REQUIRE_GPU="true", OPTARENA_REDIS_URL="redis://127.0.0.1:9/0")
    assert started.returncode == 1
    assert "OPTARENA_REQUIRE_GPU is set but the tensorflow backend sees no GPU" in started.stderr
    assert "NVIDIA Container Toolkit" in started.stderr
