"""The API server that `python -m api` runs (the command compose and scripts/dev both run).

With OPTARENA_API_WORKERS above 1, each process listens on the port with a socket of its own
(SO_REUSEPORT), so the kernel spreads new connections evenly over them. Behind one shared
socket (uvicorn's own workers) whichever process woke first took a burst of connections in
one accept loop: 50 keep-alive clients were split 10 to 40, and the busier process set
everyone's pace. This process starts them, starts another when one dies, and stops them all
on SIGTERM or SIGINT."""

import logging
import multiprocessing
import os
import signal
import socket
import sys
import tempfile
import threading
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from core.logs import config, configure
from core.settings import Settings, get_settings

log = logging.getLogger("api")


def options(settings: Settings) -> dict[str, Any]:
    """uvicorn's settings for one API process."""
    return {
        "app": "api.app:create_app",
        "factory": True,
        "host": settings.api_host,
        "port": settings.api_port,
        "log_level": settings.log_level.lower(),
        # Every process logs through core.logs; requests are logged by
        # api.logs.RequestObserver, with the job they are about, instead of uvicorn's access log.
        "log_config": config(settings, service="api"),
        "access_log": False,
        # libuv's event loop and the C HTTP parser (both dependencies): a request costs less
        # CPU than on asyncio's loop with h11 (docs/performance.md, stop 33)
        "loop": "uvloop",
        "http": "httptools",
    }


def listening(host: str, port: int, backlog: int) -> socket.socket:
    """A socket of this process's own on host:port, shared with its siblings (SO_REUSEPORT)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.listen(backlog)
    return sock


def serve_one() -> None:
    """One of several API processes (the target of each child)."""
    settings = get_settings()
    configure(settings, service="api")
    server_config = uvicorn.Config(**options(settings))
    try:
        sock = listening(settings.api_host, settings.api_port, server_config.backlog)
    except OSError as error:
        log.error("cannot listen on %s:%s: %s", settings.api_host, settings.api_port, error)
        sys.exit(STARTUP_FAILURE)
    server = uvicorn.Server(server_config)
    server.run(sockets=[sock])
    if not server.started:  # its startup failed (Postgres or Redis refused, say)
        sys.exit(STARTUP_FAILURE)


class Processes:
    """`count` API processes kept running until SIGTERM or SIGINT."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.stopping = threading.Event()
        self.exit_code = 0
        self._spawn = multiprocessing.get_context("spawn")

    def _start(self) -> Any:
        child = self._spawn.Process(target=serve_one, name="optarena-api")
        child.start()
        return child

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())
        children = [self._start() for _ in range(self.count)]
        log.info("API processes %s", [child.pid for child in children])
        while not self.stopping.wait(0.5):
            for i, child in enumerate(children):
                if child.is_alive():
                    continue
                child.join()
                if child.exitcode == STARTUP_FAILURE:  # it would fail the same way again
                    log.error("API process %s failed to start; stopping", child.pid)
                    self.exit_code = STARTUP_FAILURE
                    self.stopping.set()
                    break
                children[i] = self._start()
                log.warning(
                    "API process %s ended (exit code %s); started %s in its place",
                    child.pid,
                    child.exitcode,
                    children[i].pid,
                )
        for child in children:
            if child.is_alive():
                os.kill(child.pid, signal.SIGTERM)  # each finishes its requests, then ends
        for child in children:
            child.join()
        return self.exit_code


def main() -> None:
    settings = get_settings()
    configure(settings, service="api")
    if settings.api_workers == 1:
        uvicorn.run(**options(settings))
        return
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Several processes answer scrapes: each writes its series where any can sum them.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="optarena-api-metrics-")
    sys.exit(Processes(settings.api_workers).run())
