"""`python -m worker`: one Celery worker, the command compose and scripts/dev both run."""

import json
import logging
import os
import subprocess
import sys
import tempfile

from core import logs
from core.settings import Settings, get_settings
from worker.celery_app import app

log = logging.getLogger(__name__)


def require_gpu(settings: Settings) -> None:
    """Refuse to start, saying why, when the backend sees no GPU (OPTARENA_REQUIRE_GPU)."""
    asked = subprocess.run(
        [sys.executable, "-m", "worker.backend"], capture_output=True, text=True, timeout=600
    )
    if asked.returncode != 0:
        raise SystemExit(
            f"optarena worker: could not ask the {settings.keras_backend} backend for its "
            f"GPUs: {asked.stderr.strip()[-2000:]}"
        )
    seen = json.loads(asked.stdout.strip().splitlines()[-1])
    if not seen["gpus"]:
        raise SystemExit(
            f"optarena worker: OPTARENA_REQUIRE_GPU is set but the {seen['backend']} backend "
            "sees no GPU. Check the NVIDIA driver on the host and the NVIDIA Container Toolkit "
            "(docker run --gpus all nvidia/cuda:12.4.1-base-ubuntu22.04 nvidia-smi), or run "
            "the CPU worker: docker compose --profile cpu up --build --scale worker-gpu=0"
        )
    log.warning("training on %s (%s backend)", ", ".join(seen["gpus"]), seen["backend"])


def main() -> None:
    settings = get_settings()
    logs.configure(settings, service="worker")
    if settings.require_gpu:
        require_gpu(settings)
    if settings.worker_metrics_port:
        # Before anything imports prometheus_client: the pool processes forked later write
        # their series here, and the parent serves their sum.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="optarena-worker-")
        from worker.metrics import serve

        serve(settings.worker_metrics_port)
    app.worker_main(
        [
            # The start-up banner is text on stdout: kept for people, left out of JSON logs.
            *(["--quiet"] if settings.log_format == "json" else []),
            "worker",
            f"--loglevel={settings.log_level}",
            f"--concurrency={settings.worker_concurrency}",
            "--prefetch-multiplier=1",
            f"--queues={settings.task_queue}",
            "--without-gossip",
            "--without-mingle",
            # Flower's view of tasks (compose turns them on).
            *(["--task-events"] if settings.task_events else []),
        ]
    )


if __name__ == "__main__":
    main()
