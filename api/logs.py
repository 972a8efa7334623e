"""Every HTTP request observed once: counted and timed for Prometheus, and a log line with
the job or run it is about (those fields on every line the request logs while it runs)."""

import logging
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import observe_end, observe_headers
from core.logs import fields

log = logging.getLogger("api.request")
ABOUT = re.compile(r"^/(jobs|runs)/([0-9a-fA-F-]{36})(?:[/.]|$)")
# Probes and scrapes arrive every few seconds: their lines are debug, not info.
QUIET = {"/healthz", "/readyz", "/metrics"}


def about(path: str) -> dict[str, str]:
    """`/jobs/<id>/metrics` is about that job; `/runs/<id>/model.keras` about that run."""
    found = ABOUT.match(path)
    if found is None:
        return {}
    return {"job_id" if found.group(1) == "jobs" else "run_id": found.group(2).lower()}


class RequestObserver:
    """ASGI middleware: the metrics of every request, and its `request` line with method,
    path, status and milliseconds."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                observe_headers(scope, time.perf_counter() - started)
            await send(message)

        with fields(**about(scope["path"])):
            try:
                await self.app(scope, receive, sending)
            finally:
                observe_end(scope, status[0])
                log.log(
                    logging.DEBUG if scope["path"] in QUIET else logging.INFO,
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status[0],
                        "ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )
