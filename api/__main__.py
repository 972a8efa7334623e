"""`python -m api`: the API server, the command compose and scripts/dev both run."""

import os
import tempfile

import uvicorn

from core.logs import config, configure
from core.settings import get_settings


def main() -> None:
    settings = get_settings()
    configure(settings, service="api")
    if settings.api_workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Several processes answer scrapes: each writes its series where any can sum them.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="optarena-api-metrics-")
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        workers=settings.api_workers,
        # libuv's event loop and the C HTTP parser (both dependencies): each request costs
        # less CPU than on asyncio's loop with h11 (docs/performance.md, stop 33)
        loop="uvloop",
        http="httptools",
        log_level=settings.log_level.lower(),
        # Every process (one per worker) logs through core.logs; requests are logged by
        # api.logs.RequestObserver, with the job they are about, instead of uvicorn's access log.
        log_config=config(settings, service="api"),
        access_log=False,
    )


if __name__ == "__main__":
    main()
