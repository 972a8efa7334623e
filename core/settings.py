"""The one place configuration is read: environment variables prefixed OPTARENA_."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting of api and worker; see the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="OPTARENA_", extra="ignore")

    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/optarena"
    redis_url: str = "redis://127.0.0.1:6379/0"
    broker_url: str | None = Field(
        default=None, description="Celery broker; defaults to redis_url."
    )
    task_queue: str = "optarena.train"

    api_host: str = "127.0.0.1"
    api_port: int = 8000

    max_runs_per_job: int = 64
    max_epochs: int = 1000
    max_batch_size: int = 65536
    max_run_seconds: int = Field(
        default=24 * 3600,
        description="Longest allowed run; the broker's visibility timeout is above it.",
    )

    stream_maxlen: int = 100_000
    stream_ttl_seconds: int = 3600
    cancel_poll_seconds: float = 0.2
    sse_ping_seconds: float = Field(
        default=15, description="Heartbeat comment on idle event streams, for proxies."
    )
    sse_block_ms: int = Field(
        default=1000, ge=10, description="How long an event stream waits on Redis per look."
    )

    dataset_cache_dir: Path = Path(".data/datasets")
    keras_backend: str = "tensorflow"
    deterministic_ops: bool = True
    worker_concurrency: int = 1
    log_level: str = "INFO"

    @property
    def celery_broker_url(self) -> str:
        return self.broker_url or self.redis_url

    @property
    def visibility_timeout_seconds(self) -> int:
        return self.max_run_seconds + 3600


@lru_cache
def get_settings() -> Settings:
    """Settings read once from the environment."""
    return Settings()
