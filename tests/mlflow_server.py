"""A real MLflow tracking server for the export test and the history benchmark, from a virtual
environment of its own (.data/venv-mlflow): MLflow is never a dependency of optarena."""

import os
import subprocess
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import ROOT, make_venv, wait_for

VENV = ROOT / ".data" / "venv-mlflow"
# pyproject's test-only dependency group
GROUP = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]["mlflow-server"]


def mlflow_python() -> Path:
    """The venv's Python, the venv made with the `mlflow-server` group (MLflow, and psycopg2
    for a Postgres backend) on first use and again when the group changes."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".installed"
    want = "\n".join(GROUP)
    if not (VENV / "bin" / "mlflow").exists() or not stamp.exists() or stamp.read_text() != want:
        make_venv(VENV, *GROUP)
        stamp.write_text(want)
    return python


@contextmanager
def mlflow_server(*, backend: str, artifacts: Path, port: int, log: Path) -> Iterator[str]:
    """`mlflow server` on 127.0.0.1:port until the block ends; yields its URL once /health
    answers."""
    mlflow_python()
    url = f"http://127.0.0.1:{port}"
    command = [str(VENV / "bin" / "mlflow"), "server", "--backend-store-uri", backend]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    command += ["--default-artifact-root", str(artifacts)]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with log.open("w") as out:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)

    def up() -> bool:
        if server.poll() is not None:
            raise AssertionError(f"mlflow server exited; its log:\n{log.read_text()[-3000:]}")
        try:
            return httpx.get(f"{url}/health", timeout=5).status_code < 500
        except httpx.TransportError:
            return False

    try:
        wait_for(f"mlflow at {url}", up, timeout=180, every=0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
