"""scripts/dev must run the very commands the compose services run, so e2e proves compose."""

import re
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

COMPOSE = (ROOT / "docker-compose.yml").read_text()
DEV = (ROOT / "scripts" / "dev").read_text()


def compose_commands() -> dict[str, str]:
    found = re.findall(r"^  ([a-z-]+):\n(?:    .*\n)*?    command: \[(.*)\]", COMPOSE, re.MULTILINE)
    return {service: " ".join(re.findall(r'"([^"]*)"', args)) for service, args in found}


def test_every_project_service_command_is_run_by_scripts_dev() -> None:
    commands = compose_commands()
    assert commands["migrate"] == "alembic upgrade head"
    assert commands["api"] == "python -m api"
    assert commands["worker-gpu"] == commands["worker-cpu"] == "python -m worker"
    for service in ("migrate", "api", "worker-gpu"):
        assert re.search(rf"^{re.escape(commands[service])}\b", DEV, re.MULTILINE), service


def test_gpu_worker_reserves_a_gpu_and_the_cpu_worker_is_a_profile() -> None:
    assert "capabilities: [gpu]" in COMPOSE and 'profiles: ["cpu"]' in COMPOSE


def test_compose_file_is_valid_with_every_profile() -> None:
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is missing; scripts/test installs Debian's package")
    for profile in ([], ["--profile", "cpu"], ["--profile", "s3"]):
        subprocess.run(["docker-compose", *profile, "config", "-q"], cwd=ROOT, check=True)


def test_the_api_and_workers_share_the_artifact_volume_and_workers_get_time_to_hand_back() -> None:
    api, workers = COMPOSE.split("  worker-gpu:")
    assert "artifacts:/data/artifacts" in api.split("  api:")[1]
    assert workers.split("  minio:")[0].count("artifacts:/data/artifacts") == 2
    assert workers.count("stop_grace_period") == 2
    assert '"--appendonly", "yes"' in COMPOSE  # queued runs survive a Redis restart


def test_compose_passes_secrets_through_the_environment() -> None:
    assert "${POSTGRES_PASSWORD:-" in COMPOSE and "${REDIS_PASSWORD:-" in COMPOSE
    assert "OPTARENA_ENVIRONMENT: ${OPTARENA_ENVIRONMENT:-development}" in COMPOSE
