"""Fixtures for real services: a fresh Postgres database per test session, migrated with
Alembic, tables emptied before each test; Redis on a database of its own; a queue name of
its own so no other worker takes the tasks the tests send. Every rig sets its own settings
(rate limits included), and waits on conditions, never on the clock."""

import os
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
        cancel_poll_seconds=0.05,
        reaper_interval_seconds=0,  # reaper tests call reap() themselves
        outbox_relay_seconds=0.5,
        max_runs_per_job=64,
        max_epochs=1000,
        rate_limit_per_minute=0,  # limit tests set their own
        max_active_runs_per_owner=10**9,
    )


@pytest.fixture
def db_engine(test_settings: Settings) -> Iterator[object]:
    engine = create_engine(test_settings.database_url)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE jobs, runs, records, outbox CASCADE"))
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(db_engine: object) -> sessionmaker[Session]:
    return sessionmaker(db_engine, expire_on_commit=False)  # type: ignore[call-overload]
