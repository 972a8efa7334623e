"""Several API processes (`python -m api` with OPTARENA_API_WORKERS): each listens on the port
with a socket of its own, so keep-alive connections are spread over all of them; one that dies
is replaced; SIGTERM ends them all."""

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.settings import Settings
from tests.conftest import ROOT, wait_for
from worker.shutdown import children_of


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def servers(parent: int) -> set[int]:
    """The parent's API processes (multiprocessing's resource tracker is a child too)."""
    found = set()
    for pid in children_of(parent):
        try:
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.add(pid)
        except OSError:
            continue
    return found


def sockets(pid: int, port: int, state: str) -> set[str]:
    """The inodes of the TCP sockets on `port` in `state` (01 established, 0A listening) that
    the process `pid` holds (Linux /proc)."""
    held = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            held.add(target[len("socket:[") : -1])
    found = set()
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == state and fields[9] in held:
            found.add(fields[9])
    return found


def answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def two_processes(
    test_settings: Settings, db_engine: object, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    env = {
        **os.environ,
        "OPTARENA_DATABASE_URL": test_settings.database_url,
        "OPTARENA_REDIS_URL": test_settings.redis_url,
        "OPTARENA_TASK_QUEUE": test_settings.task_queue,
        "OPTARENA_ARTIFACTS_URL": str(tmp_path / "artifacts"),
        "OPTARENA_API_PORT": str(port),
        "OPTARENA_API_WORKERS": "2",
        "OPTARENA_REAPER_INTERVAL_SECONDS": "0",
        "OPTARENA_LOG_LEVEL": "WARNING",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with (tmp_path / "api.log").open("wb") as log:
        api = subprocess.Popen(
            [sys.executable, "-m", "api"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield api, port
        finally:
            if api.poll() is None:
                os.killpg(api.pid, signal.SIGKILL)
                api.wait(timeout=30)


def test_two_api_processes_share_the_connections_one_that_dies_is_replaced_and_sigterm_ends_them(
    two_processes: tuple[subprocess.Popen[bytes], int],
) -> None:
    api, port = two_processes
    url = f"http://127.0.0.1:{port}"
    wait_for("two API processes answering", lambda: len(servers(api.pid)) == 2 and answers(url))
    started = servers(api.pid)
    # each listens with a socket of its own; the parent holds none
    listening = {pid: sockets(pid, port, "0A") for pid in started}
    assert all(len(inodes) == 1 for inodes in listening.values()), listening
    assert len(set.union(*listening.values())) == 2, listening
    assert not sockets(api.pid, port, "0A")

    # 32 keep-alive connections: each process holds some (all on one: odds of 2 in 2**32)
    clients = [httpx.Client(base_url=url, timeout=30) for _ in range(32)]
    try:
        for client in clients:
            assert client.get("/healthz").status_code == 200
        held = {pid: len(sockets(pid, port, "01")) for pid in started}
        assert sum(held.values()) == 32, held
        assert all(count > 0 for count in held.values()), held
    finally:
        for client in clients:
            client.close()

    victim = min(started)
    os.kill(victim, signal.SIGKILL)
    wait_for(
        "another process in its place",
        lambda: victim not in (now := servers(api.pid)) and len(now) == 2,
    )
    wait_for("the port answering", lambda: answers(url))

    survivors = servers(api.pid)
    api.send_signal(signal.SIGTERM)
    assert api.wait(timeout=60) == 0
    for pid in survivors:
        wait_for(f"API process {pid} to end", lambda pid=pid: not Path(f"/proc/{pid}").exists())
