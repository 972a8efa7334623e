"""`python -m api`: the API server, the command compose and scripts/dev both run."""

import os
import tempfile

import uvicorn

from core.settings import get_settings


def main() -> None:
    settings = get_settings()
    if settings.api_workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Several processes answer scrapes: each writes its series where any can sum them.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="optarena-api-metrics-")
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        workers=settings.api_workers,
        log_level=settings.log_level.lower(),
    )


if __name__ == "__main__":
    main()
