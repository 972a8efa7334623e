"""`python -m worker.flower`: Celery's Flower on the workers' broker (from settings, so its
password never appears on a command line), behind basic auth."""

import sys

from core import logs
from core.settings import Settings, get_settings


def flower_args(settings: Settings) -> list[str]:
    """The `celery flower` arguments; a missing or unusable password is refused, saying why."""
    if settings.flower_password is None:
        raise SystemExit(
            "optarena flower: set OPTARENA_FLOWER_PASSWORD (Flower shows every task and can "
            "shut workers down, so it is never served without a password)"
        )
    password = settings.flower_password.get_secret_value()
    if "," in password or ":" in settings.flower_user or not password:
        raise SystemExit(
            "optarena flower: OPTARENA_FLOWER_PASSWORD may not be empty or hold a comma, nor "
            "OPTARENA_FLOWER_USER a colon (Flower reads user:password,user:password)"
        )
    return [
        "flower",
        f"--address={settings.flower_host}",
        f"--port={settings.flower_port}",
        f"--basic-auth={settings.flower_user}:{password}",
    ]


def main() -> None:
    settings = get_settings()
    logs.configure(settings, service="flower")
    args = flower_args(settings)
    from worker.celery_app import app  # the broker, its password percent-encoded

    sys.exit(app.start(args) or 0)


if __name__ == "__main__":
    main()
