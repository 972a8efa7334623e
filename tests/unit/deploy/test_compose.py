"""scripts/dev must run the very commands the compose services run, so e2e proves compose."""

import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT
from tests.unit.deploy.test_locks import locked_versions

COMPOSE = (ROOT / "docker-compose.yml").read_text()
DEV = (ROOT / "scripts" / "dev").read_text()
DOCKERFILE = (ROOT / "Dockerfile").read_text()
SERVICES: dict[str, Any] = yaml.safe_load(COMPOSE)["services"]  # anchors and merges resolved
WORKERS = [name for name in SERVICES if name.startswith("worker-")]
GPU_WORKERS = [name for name in WORKERS if name.startswith("worker-gpu")]
LONG_RUNNING = ["postgres", "redis", "api", "minio", "flower", "prometheus", "grafana", *WORKERS]
PROFILES = sorted({p for service in SERVICES.values() for p in service.get("profiles", [])})
DEPLOY = ROOT / "deploy"


def compose_commands() -> dict[str, str]:
    return {name: " ".join(s["command"]) for name, s in SERVICES.items() if "command" in s}


def test_every_project_service_command_is_run_by_scripts_dev() -> None:
    commands = compose_commands()
    assert commands["migrate"] == "alembic upgrade head"
    assert commands["api"] == "python -m api"
    assert {commands[w] for w in WORKERS} == {"python -m worker"}
    for service in ("migrate", "api", "worker-gpu"):
        assert re.search(rf"^{re.escape(commands[service])}\b", DEV, re.MULTILINE), service


def test_one_gpu_worker_per_gpu_each_refusing_to_start_without_one() -> None:
    devices = {}
    for name in GPU_WORKERS:
        service = SERVICES[name]
        [device] = service["deploy"]["resources"]["reservations"]["devices"]
        assert device["capabilities"] == ["gpu"] and device["driver"] == "nvidia"
        devices[name] = device["device_ids"]
        assert service["environment"]["OPTARENA_REQUIRE_GPU"] == "true"
        # Inside the container the reserved GPU is the only one: no index to get wrong.
        assert "CUDA_VISIBLE_DEVICES" not in service["environment"]
        assert service["build"]["args"]["WORKER_LOCK"] == "worker-gpu"
    assert devices == {
        "worker-gpu": ["0"],
        **{f"worker-gpu-{i}": [str(i)] for i in range(1, 8)},
    }
    assert "profiles" not in SERVICES["worker-gpu"]
    assert all(SERVICES[f"worker-gpu-{i}"]["profiles"] == [f"gpu-{i}"] for i in range(1, 8))


def test_the_cpu_worker_is_a_profile_whose_image_has_no_cuda_wheels() -> None:
    cpu = SERVICES["worker-cpu"]
    assert cpu["profiles"] == ["cpu"] and cpu["environment"]["CUDA_VISIBLE_DEVICES"] == ""
    assert cpu["build"]["args"]["WORKER_LOCK"] == "worker-cpu"
    locked = locked_versions(ROOT / "requirements" / "worker-cpu.txt")
    assert "tensorflow-cpu" in locked and "tensorflow" not in locked
    assert not any("cuda" in name or name.startswith("nvidia") for name in locked)
    gpu = locked_versions(ROOT / "requirements" / "worker-gpu.txt")
    assert "tensorflow" in gpu and any(name.startswith("nvidia-cudnn") for name in gpu)


def test_services_restart_workers_are_pinged_and_reap_their_children() -> None:
    for name in LONG_RUNNING:
        assert SERVICES[name]["restart"] == "unless-stopped", name
    for name in ["api", *WORKERS]:
        assert SERVICES[name]["init"] is True, name
    for name in WORKERS:
        check = " ".join(SERVICES[name]["healthcheck"]["test"])
        assert "celery -A worker.celery_app inspect ping -d celery@$$HOSTNAME" in check


def stages() -> dict[str, str]:
    """The Dockerfile's stages by name (`FROM ... AS name`)."""
    found = {}
    for stage in DOCKERFILE.split("\nFROM ")[1:]:
        found[stage.split("\n", 1)[0].split(" AS ")[1].strip()] = stage
    return found


def test_the_images_install_dependencies_before_the_source() -> None:
    for name in ("api", "worker"):
        stage = stages()[name]
        deps = stage.index("pip install --require-hashes -r")
        assert deps < stage.index("COPY --from=source"), stage
        # the client's command, with the server's `keys` added
        assert "pip install --no-deps ./client ." in stage


def test_the_source_stage_holds_every_package_the_images_install() -> None:
    source = stages()["source"]
    copied = {
        part
        for line in source.splitlines()
        if line.startswith("COPY ")
        for part in line.split()[1:-1]
    }
    parts = (
        "core",
        "api",
        "worker",
        "cli",
        "client",
        "migrations",
        "alembic.ini",
        "pyproject.toml",
    )
    assert set(parts) <= copied, sorted(set(parts) - copied)


def test_compose_file_is_valid_with_every_profile() -> None:
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is missing; scripts/test installs Debian's package")
    assert {"cpu", "s3", "monitoring", "gpu-1", "gpu-7"} <= set(PROFILES)
    for profile in (
        [],
        *(["--profile", p] for p in PROFILES),
        [f"--profile={p}" for p in PROFILES],
    ):
        subprocess.run(["docker-compose", *profile, "config", "-q"], cwd=ROOT, check=True)


def test_the_monitoring_profile_runs_flower_prometheus_and_grafana() -> None:
    for name in ("flower", "prometheus", "grafana"):
        assert SERVICES[name]["profiles"] == ["monitoring"], name
    flower = SERVICES["flower"]
    assert flower["command"] == ["python", "-m", "worker.flower"]
    assert flower["build"]["args"]["API_LOCK"] == "monitoring"
    assert "flower" in locked_versions(ROOT / "requirements" / "monitoring.txt")
    assert flower["environment"]["OPTARENA_FLOWER_PASSWORD"].startswith("${FLOWER_PASSWORD")
    for name in WORKERS:  # Flower sees tasks only when the workers send their events
        assert SERVICES[name]["environment"]["OPTARENA_TASK_EVENTS"] == "true", name
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), (name, source)


def test_prometheus_scrapes_the_api_with_a_key_and_every_worker_on_its_metrics_port() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    api = jobs["optarena-api"]
    assert api["static_configs"][0]["targets"] == ["api:8000"]
    assert api["authorization"]["credentials_file"] == "/etc/prometheus/secrets/api-key"
    [found] = jobs["optarena-workers"]["dns_sd_configs"]
    assert set(found["names"]) == set(WORKERS)
    ports = {SERVICES[w]["environment"]["OPTARENA_WORKER_METRICS_PORT"] for w in WORKERS}
    assert ports == {str(found["port"])}
    # the key itself is never committed
    ignored = (DEPLOY / "prometheus" / "secrets" / ".gitignore").read_text().split()
    assert ignored == ["*", "!.gitignore"]


def test_grafana_is_provisioned_with_the_prometheus_source_and_the_dashboard() -> None:
    import json

    provisioning = DEPLOY / "grafana" / "provisioning"
    [source] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["url"] == "http://prometheus:9090"
    [provider] = yaml.safe_load((provisioning / "dashboards" / "optarena.yml").read_text())[
        "providers"
    ]
    mounted = dict(v.split(":")[:2] for v in SERVICES["grafana"]["volumes"] if v.startswith("./"))
    assert mounted["./deploy/grafana/dashboards"] == provider["options"]["path"]
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "optarena.json").read_text())
    titles = {panel["title"] for panel in dashboard["panels"]}
    assert {"Queue depth", "Runs by status", "Epochs per second", "Epoch to client lag"} <= titles
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]


def test_the_api_and_workers_share_the_artifact_volume_and_workers_get_time_to_hand_back() -> None:
    assert "artifacts:/data/artifacts" in SERVICES["api"]["volumes"]
    for name in WORKERS:
        assert "artifacts:/data/artifacts" in SERVICES[name]["volumes"], name
        assert SERVICES[name]["stop_grace_period"] == "10m", name
    assert SERVICES["redis"]["command"][1:3] == ["--appendonly", "yes"]  # queues survive


def test_compose_passes_secrets_through_the_environment_outside_the_urls() -> None:
    assert "${POSTGRES_PASSWORD:-" in COMPOSE and "${REDIS_PASSWORD:-" in COMPOSE
    assert "OPTARENA_ENVIRONMENT: ${OPTARENA_ENVIRONMENT:-development}" in COMPOSE
    env = SERVICES["api"]["environment"]
    assert env["OPTARENA_DATABASE_PASSWORD"] == "${POSTGRES_PASSWORD:-optarena}"
    assert env["OPTARENA_REDIS_PASSWORD"] == "${REDIS_PASSWORD:-optarena}"
    # Percent-encoded by the settings, so a generated password of any characters works.
    assert "@" not in env["OPTARENA_DATABASE_URL"].replace("optarena@postgres", "")
    assert "@" not in env["OPTARENA_REDIS_URL"]
