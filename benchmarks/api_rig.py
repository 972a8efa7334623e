"""An API process for a benchmark, started as compose starts it (`python -m api`), on its own
database, port and queue; and keys for many clients."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.db import make_engine, make_session_factory, transaction
from core.keys import KeyRepository
from tests.conftest import REDIS_URL, ROOT, add_test_keys, create_database, drop_database, migrate
from tests.e2e.conftest import free_port


@contextmanager
def database(name: str) -> Iterator[str]:
    url = create_database(name)
    migrate(url)
    add_test_keys(url)
    try:
        yield url
    finally:
        drop_database(name)


def make_keys(db_url: str, owners: int) -> list[str]:
    """One key each for `owners` new owners; their secrets."""
    engine = make_engine(db_url)
    with transaction(make_session_factory(engine)) as session:
        secrets = [KeyRepository(session).create(owner=f"client-{i}")[1] for i in range(owners)]
    engine.dispose()
    return secrets


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process and its children (the API's workers), from /proc."""
    total = 0.0
    children = Path(f"/proc/{pid}/task/{pid}/children")
    for child in children.read_text().split() if children.exists() else []:
        total += cpu_seconds(int(child))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return total + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Api:
    url: str
    pid: int


@contextmanager
def api_process(db_url: str, queue: str, **settings: str) -> Iterator[Api]:
    """The API while it runs with these OPTARENA_ settings (lower-case names)."""
    port = free_port()
    env = {
        **os.environ,
        "OPTARENA_DATABASE_URL": db_url,
        "OPTARENA_REDIS_URL": REDIS_URL,
        "OPTARENA_TASK_QUEUE": queue,
        "OPTARENA_API_PORT": str(port),
        "OPTARENA_LOG_LEVEL": "WARNING",
        **{f"OPTARENA_{k.upper()}": v for k, v in settings.items()},
    }
    api = subprocess.Popen([sys.executable, "-m", "api"], cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or api.poll() is not None:
                raise SystemExit("the API did not start")
            time.sleep(0.1)
        yield Api(url, api.pid)
    finally:
        api.terminate()
        api.wait(timeout=30)
        # The messages for workers that never come: the broker is this Redis.
        redis.Redis.from_url(REDIS_URL).delete(queue)
