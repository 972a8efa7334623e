"""`python -m worker`: one Celery worker, the command compose and scripts/dev both run."""

from core.settings import get_settings
from worker.celery_app import app


def main() -> None:
    settings = get_settings()
    app.worker_main(
        [
            "worker",
            f"--loglevel={settings.log_level}",
            f"--concurrency={settings.worker_concurrency}",
            "--prefetch-multiplier=1",
            f"--queues={settings.task_queue}",
            "--without-gossip",
            "--without-mingle",
        ]
    )


if __name__ == "__main__":
    main()
