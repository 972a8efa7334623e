"""A rig for fault tests: its own Redis (append-only, as deployed), its own workers and API,
and a TCP proxy in front of Postgres that can be cut, all on spare ports. The machine's shared
Postgres and Redis are never stopped: the proxy and the rig's own Redis take the faults."""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import (
    ADMIN_URL,
    KEYS,
    ROOT,
    add_test_keys,
    auth,
    create_database,
    drop_database,
    migrate,
    wait_for,
)
from worker.shutdown import children_of

ARTIFACTS = ROOT / "test-artifacts"


def postgres_address() -> str:
    """host:port of the shared Postgres, as the test URLs spell it."""
    return ADMIN_URL.split("@", 1)[1].split("/", 1)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proxy:
    """TCP between the workers and Postgres; `cut()` drops every connection and refuses new
    ones until `restore()`, as a network partition or a Postgres restart looks to a client."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._server: socket.socket | None = None
        self.restore()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def restore(self) -> None:
        with self._lock:
            if self._server is not None:  # not cut (overlapping cuts restore once)
                return
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            if self._server is not None:
                # shutdown() first: close() alone leaves a thread blocked in accept() and
                # the kernel still listening.
                with contextlib.suppress(OSError):
                    self._server.shutdown(socket.SHUT_RDWR)
                self._server.close()
                self._server = None
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class RedisServer:
    """A redis-server of the rig's own, append-only like the compose service, restartable."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (Debian package redis-server)")
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for("redis to listen", self._answers, timeout=60)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def crash(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.crash()


@dataclass
class Tally:
    """What the fault tests did and found, for the issue note (test-artifacts/faults.json)."""

    kills: dict[str, int] = field(default_factory=dict)
    jobs: int = 0
    records_checked: int = 0
    records_lost: int = 0
    duplicates: int = 0
    max_metric_difference: float = 0.0
    soak: dict[str, Any] = field(default_factory=dict)

    def kill(self, what: str) -> None:
        self.kills[what] = self.kills.get(what, 0) + 1


TALLY = Tally()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TALLY.jobs:
        return
    ARTIFACTS.mkdir(exist_ok=True)
    summary = {
        "faults_survived": TALLY.kills,
        "jobs": TALLY.jobs,
        "records_checked": TALLY.records_checked,
        "records_lost": TALLY.records_lost,
        "duplicates": TALLY.duplicates,
        "max_relative_metric_difference_vs_uninterrupted": TALLY.max_metric_difference,
        "soak": TALLY.soak,
    }
    (ARTIFACTS / "faults.json").write_text(json.dumps(summary, indent=2))
    terminalreporter.write_line(f"fault tests: {json.dumps(summary)}")


@dataclass
class Rig:
    root: Path
    database_url: str
    redis: RedisServer
    proxy: Proxy
    queue: str
    logs: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    api_url: str = ""
    http: httpx.Client | None = None
    api_process: subprocess.Popen[bytes] | None = None
    # Settings of the artifact store when it is not the rig's directory (S3).
    store_env: dict[str, str] = field(default_factory=dict)

    def env(self, **overrides: Any) -> dict[str, str]:
        via_proxy = self.database_url.replace(f"@{postgres_address()}", f"@{self.proxy.address}")
        env = {
            **os.environ,
            "OPTARENA_DATABASE_URL": via_proxy,
            "OPTARENA_REDIS_URL": self.redis.url,
            "OPTARENA_TASK_QUEUE": self.queue,
            "OPTARENA_DATASET_CACHE_DIR": str(self.root / "datasets"),
            "OPTARENA_ARTIFACTS_URL": str(self.root / "artifacts"),
            "OPTARENA_HEARTBEAT_SECONDS": "0.5",
            "OPTARENA_STALE_AFTER_SECONDS": "4",
            "OPTARENA_REAPER_INTERVAL_SECONDS": "1",
            "OPTARENA_DB_RETRY_SECONDS": "60",
            "OPTARENA_CANCEL_POLL_SECONDS": "0.2",
            "OPTARENA_SSE_BLOCK_MS": "200",
            # The rig's own limits: polling at any pace is never refused, and a job's runs
            # are never too many for its owner.
            "OPTARENA_RATE_LIMIT_PER_MINUTE": "0",
            "OPTARENA_MAX_ACTIVE_RUNS_PER_OWNER": "100000",
            "OPTARENA_OUTBOX_RELAY_SECONDS": "0.5",
            **self.store_env,
        }
        env.update({f"OPTARENA_{k.upper()}": str(v) for k, v in overrides.items()})
        return env

    def spawn(self, module: str, name: str, **overrides: Any) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=ROOT,
            env=self.env(**overrides),
            stdout=(self.logs / f"{name}.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killing it kills its pool too
        )
        self.processes.append(process)
        return process

    def worker(self, name: str = "worker", **overrides: Any) -> subprocess.Popen[bytes]:
        return self.spawn("worker", name, **overrides)

    def api(self, **overrides: Any) -> httpx.Client:
        """The API (and with it the reaper), on the real Postgres, not through the proxy."""
        port = free_port()
        self.api_process = self.spawn(
            "api", "api", database_url=self.database_url, api_port=port, **overrides
        )
        self.api_url = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(base_url=self.api_url, timeout=30, headers=auth())

        def ready() -> bool:
            try:
                assert self.http is not None
                return self.http.get("/healthz").status_code == 200
            except httpx.TransportError:
                return False

        wait_for("the API", ready, timeout=60)
        return self.http

    def kill_api(self) -> None:
        """SIGKILL the API: whatever it committed stays; whatever it had not sent, it never will."""
        assert self.api_process is not None
        os.killpg(self.api_process.pid, signal.SIGKILL)
        self.api_process.wait(timeout=30)
        if self.http is not None:
            self.http.close()
            self.http = None

    def sql(self, query: str, **params: Any) -> Any:
        """One value from the rig's database (straight, not through the cuttable proxy)."""
        from sqlalchemy import create_engine, text

        engine = create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                return conn.execute(text(query), params).scalar_one()
        finally:
            engine.dispose()

    def queued_messages(self) -> int:
        """Messages waiting in the rig's broker queue."""
        import redis

        client = redis.Redis.from_url(self.redis.url)
        try:
            return int(client.llen(self.queue))
        finally:
            client.close()

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def pool_children(self, worker: subprocess.Popen[bytes]) -> list[int]:
        return children_of(worker.pid)

    def kill_training_process(self, worker: subprocess.Popen[bytes]) -> int:
        [child] = wait_for("the pool process", lambda: self.pool_children(worker), timeout=120)
        os.kill(child, signal.SIGKILL)
        return int(child)

    def while_stopped(
        self,
        worker: subprocess.Popen[bytes],
        what: str,
        now: Callable[[], bool],
        act: Callable[[int], object],
    ) -> int:
        """`act(pool pid)` at a moment `now()` holds, as seen while the training process is
        stopped (SIGSTOP): what was seen cannot change before the fault lands, however fast
        training runs. Looks again (the process running meanwhile) until it holds; the
        process goes on (SIGCONT) after the act."""
        deadline = time.monotonic() + 600
        while True:
            [child] = wait_for("the pool process", lambda: self.pool_children(worker), timeout=120)
            try:
                os.kill(child, signal.SIGSTOP)
            except ProcessLookupError:
                continue  # between two pool processes
            try:
                if now():
                    act(child)
                    return int(child)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGCONT)
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after 600s waiting for {what}")
            time.sleep(0.05)

    def kill_when(
        self,
        worker: subprocess.Popen[bytes],
        what: str,
        now: Callable[[], bool],
        *,
        whole_worker: bool = False,
    ) -> int:
        """SIGKILL the training process (or the whole worker) once `now()` holds, seen with
        the training process stopped."""

        def kill(child: int) -> None:
            if whole_worker:
                self.kill_worker(worker)
            else:
                os.kill(child, signal.SIGKILL)

        return self.while_stopped(worker, what, now, kill)

    def kill_worker(self, worker: subprocess.Popen[bytes]) -> None:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        self.processes.clear()
        if self.http is not None:
            self.http.close()
            self.http = None


@pytest.fixture(scope="session")
def fault_database() -> Iterator[str]:
    name = f"optarena_faults_{os.getpid()}"
    url = create_database(name)
    migrate(url)
    add_test_keys(url)
    yield url
    drop_database(name)


@pytest.fixture
def rig(tmp_path: Path, fault_database: str) -> Iterator[Rig]:
    from sqlalchemy import create_engine, text

    engine = create_engine(fault_database)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE jobs, runs, records, outbox, uploads CASCADE"))
    engine.dispose()
    (tmp_path / "redis").mkdir()
    (tmp_path / "logs").mkdir()
    redis_server = RedisServer(tmp_path / "redis")
    host, _, port = postgres_address().rpartition(":")
    proxy = Proxy((host, int(port)))
    rig = Rig(
        root=tmp_path,
        database_url=fault_database,
        redis=redis_server,
        proxy=proxy,
        queue=f"optarena.faults.{uuid.uuid4().hex[:8]}",
        logs=tmp_path / "logs",
    )
    try:
        yield rig
    finally:
        rig.stop_all()
        proxy.cut()
        redis_server.stop()


__all__ = ["KEYS", "TALLY", "Rig", "wait_for"]
