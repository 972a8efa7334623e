"""Fixtures for real services: a fresh Postgres database per test session, migrated with
Alembic, tables emptied before each test; Redis on a database of its own; a queue name of
its own so no other worker takes the tasks the tests send. Every rig sets its own settings
(rate limits included), and waits on conditions, never on the clock."""

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings

if TYPE_CHECKING:
    from core.runs import RunInfo

ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = os.environ.get(
    "OPTARENA_TEST_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("OPTARENA_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")

# Keys every test database holds: (owner, secret, admin).
KEYS = {
    "tester": ("tester", "oa_test-key-of-tester", False),
    "other": ("other", "oa_test-key-of-other", False),
    "admin": ("root", "oa_test-key-of-admin", True),
}


T = TypeVar("T")

UV = Path(sys.executable).parent / "uv"  # from the dev lock, beside the tests' Python


def make_venv(path: Path, *requirements: str) -> Path:
    """A virtual environment of its own at `path` (made anew, without the project's site
    packages) with `requirements` installed by uv, as pip would install them; its Python."""
    subprocess.run(
        [str(UV), "venv", "--quiet", "--clear", "--python", sys.executable, str(path)], check=True
    )
    python = path / "bin" / "python"
    install(python, *requirements)
    return python


def install(python: Path, *requirements: str, reinstall: bool = False) -> None:
    """`pip install` of `requirements` into the environment of `python`, by uv."""
    command = [str(UV), "pip", "install", "--quiet", "--python", str(python)]
    command += ["--no-deps", "--reinstall"] if reinstall else []
    subprocess.run([*command, *requirements], check=True)


def wait_for(what: str, check: Callable[[], T], *, timeout: float = 60, every: float = 0.1) -> T:
    """Poll `check` until it returns something true, or fail after a generous `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def run_info(**fields: Any) -> "RunInfo":
    """A run as stored, for tests of functions that read runs: these fields, defaults else."""
    from core.models import RunStatus
    from core.runs import RunInfo

    defaults: dict[str, Any] = {
        "id": uuid.uuid4(),
        "index": 0,
        "arm": 0,
        "label": "run",
        "optimizer": {"name": "sgd"},
        "seed": None,
        "batch_size": None,
        "budget": 3,
        "status": RunStatus.SUCCEEDED,
        "attempt": 1,
        "handbacks": 0,
        "heartbeat_at": None,
        "error": None,
        "diverged_at": None,
        "initial_weights_sha256": None,
        "summary": None,
        "environment": None,
        "started_at": None,
        "finished_at": None,
    }
    return RunInfo(**{**defaults, **fields})


def auth(who: str = "tester") -> dict[str, str]:
    """The Authorization header of a test key."""
    return {"authorization": f"Bearer {KEYS[who][1]}"}


def add_test_keys(url: str) -> None:
    from core.keys import hash_key

    engine = create_engine(url)
    with engine.begin() as conn:
        for owner, secret, admin in KEYS.values():
            conn.execute(
                text(
                    "INSERT INTO api_keys (id, owner, prefix, key_sha256, admin) "
                    "VALUES (gen_random_uuid(), :owner, :prefix, :sha, :admin)"
                ),
                {"owner": owner, "prefix": secret[:10], "sha": hash_key(secret), "admin": admin},
            )
    engine.dispose()


def database_url(name: str) -> str:
    return ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def create_database(name: str) -> str:
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return database_url(name)


def drop_database(name: str) -> None:
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def migrate(url: str, revision: str = "head", *, down: bool = False) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = url
    config.attributes["configure_logger"] = False
    if down:
        command.downgrade(config, revision)
    else:
        command.upgrade(config, revision)


@pytest.fixture(scope="session")
def migrated_database() -> Iterator[str]:
    name = f"optarena_test_{os.getpid()}"
    url = create_database(name)
    migrate(url)
    add_test_keys(url)
    yield url
    drop_database(name)


@pytest.fixture(scope="session")
def test_settings(migrated_database: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        database_url=migrated_database,
        redis_url=REDIS_URL,
        task_queue=f"optarena.test.{uuid.uuid4().hex[:8]}",
        dataset_cache_dir=tmp_path_factory.mktemp("datasets"),
        artifacts_url=str(tmp_path_factory.mktemp("artifacts")),
        cancel_poll_seconds=0.05,
        reaper_interval_seconds=0,  # reaper tests call reap() themselves
        outbox_relay_seconds=0.5,
        max_runs_per_job=64,
        max_epochs=1000,
        rate_limit_per_minute=0,  # limit tests set their own
        key_cache_seconds=0,  # a revoked key is refused at once; the cache's test sets its own
        max_active_runs_per_owner=10**9,
    )


@pytest.fixture
def db_engine(test_settings: Settings) -> Iterator[object]:
    engine = create_engine(test_settings.database_url)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE jobs, runs, records, outbox, uploads CASCADE"))
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(db_engine: object) -> sessionmaker[Session]:
    return sessionmaker(db_engine, expire_on_commit=False)  # type: ignore[call-overload]


class S3Server:
    """moto's S3 server in a process of its own on a spare port: a real S3-compatible
    endpoint over HTTP, for the artifact store's s3:// path."""

    def __init__(self, log: Path) -> None:
        import socket
        import subprocess
        import sys

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("wb")
        server = Path(sys.executable).parent / "moto_server"
        self.process = subprocess.Popen(
            [str(server), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        import httpx

        def up() -> bool:
            try:
                return httpx.get(self.url, timeout=2).status_code < 500
            except httpx.HTTPError:
                return False

        wait_for("moto's S3 server to answer", up, timeout=60)

    def bucket(self) -> str:
        """A new empty bucket."""
        import httpx

        name = f"optarena-{uuid.uuid4().hex[:12]}"
        httpx.put(f"{self.url}/{name}", timeout=10).raise_for_status()
        return name

    def env(self, bucket: str) -> dict[str, str]:
        """The settings (as environment) of a store in `bucket`."""
        return {
            "OPTARENA_ARTIFACTS_URL": f"s3://{bucket}/artifacts",
            "OPTARENA_S3_ENDPOINT_URL": self.url,
            "OPTARENA_S3_ACCESS_KEY_ID": "testing",
            "OPTARENA_S3_SECRET_ACCESS_KEY": "testing",
            "OPTARENA_S3_REGION": "us-east-1",
        }

    def settings(self, base: Settings, bucket: str) -> Settings:
        from pydantic import SecretStr

        return base.model_copy(
            update={
                "artifacts_url": f"s3://{bucket}/artifacts",
                "s3_endpoint_url": self.url,
                "s3_access_key_id": "testing",
                "s3_secret_access_key": SecretStr("testing"),
                "s3_region": "us-east-1",
            }
        )

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self._log.close()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("s3") / "moto.log")
    yield server
    server.stop()
