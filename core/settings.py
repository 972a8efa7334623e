"""The one place configuration is read: environment variables prefixed OPTARENA_."""

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting of api and worker; see the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="OPTARENA_", extra="ignore")

    environment: Literal["development", "production"] = Field(
        default="development",
        description="In production, database and broker URLs with default credentials are "
        "refused at start-up.",
    )

    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/optarena"
    redis_url: str = "redis://127.0.0.1:6379/0"
    broker_url: str | None = Field(
        default=None, description="Celery broker; defaults to redis_url."
    )
    task_queue: str = "optarena.train"
    database_password: SecretStr | None = Field(
        default=None,
        description="Put into the database URL, percent-encoded, so a generated password may "
        "hold any character ('@', '/', ':'); a password in the URL itself is replaced.",
    )
    redis_password: SecretStr | None = Field(
        default=None,
        description="Likewise for the Redis URL, and the broker's when it has no URL of its own.",
    )

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_workers: int = Field(
        default=1,
        ge=1,
        description="API server processes on the one port, each listening with a socket of "
        "its own so connections spread evenly (each runs its own relay, reaper and "
        "event-stream tails; all of them are safe to run several times).",
    )
    api_concurrency: int = Field(
        default=8,
        ge=1,
        le=12,
        description="Requests each API process handles at once; the others wait their turn "
        "on the event loop. Below the 15 connections and 40 threads a process pools, so an "
        "admitted request always gets both (more in flight could stall a process: "
        "api/admission.py).",
    )
    key_cache_seconds: float = Field(
        default=5,
        ge=0,
        description="How long an API process trusts a key it has looked up: a revoked key is "
        "refused within this long; 0: every request looks its key up.",
    )

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
    fashion_mnist_dir: Path = Field(
        default=Path("/usr/share/datasets/fashion-mnist"),
        description="Where Debian's dataset-fashion-mnist package puts the real Fashion-MNIST "
        "files; read when they are not in the dataset cache.",
    )
    artifacts_url: str = Field(
        default=".data/artifacts",
        description="The artifact store: uploaded datasets and models, per-run checkpoints "
        "and trained models. A directory every process shares (a volume in compose), or "
        "s3://bucket/prefix for workers on several machines.",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="An S3-compatible endpoint (MinIO, say); None: AWS."
    )
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_region: str | None = None
    max_upload_bytes: int = Field(
        default=200 * 1024 * 1024, ge=1024, description="The largest dataset or model upload."
    )
    trained_model_retention_seconds: float = Field(
        default=30 * 86400,
        ge=0,
        description="A finished run's trained model is kept this long for download; 0: "
        "trained models are not kept.",
    )
    heartbeat_seconds: float = Field(default=5, gt=0, description="How often a run beats.")
    stale_after_seconds: float = Field(
        default=60, gt=0, description="A running run whose last beat is older is re-queued."
    )
    reaper_interval_seconds: float = Field(
        default=15, ge=0, description="How often the API looks for stale runs; 0: never."
    )
    max_attempts: int = Field(
        default=3, ge=1, description="Tries of a run (hand-backs on shutdown not counted)."
    )
    db_retry_seconds: float = Field(
        default=300, ge=0, description="How long a worker retries a Postgres write."
    )
    outbox_relay_seconds: float = Field(
        default=2,
        ge=0,
        description="How often the API's relay sends messages left in the outbox (it also "
        "sends right after each commit that adds some); 0: this process relays nothing.",
    )
    outbox_retention_seconds: float = Field(
        default=86400, gt=0, description="Sent outbox rows are deleted after this long."
    )
    resend_queued_after_seconds: float = Field(
        default=1800,
        ge=0,
        description="A queued run with no message sent for this long is sent again (its "
        "message was lost); 0: never. Keep it below the outbox retention.",
    )

    max_body_bytes: int = Field(default=1_000_000, ge=1024, description="Request body limit.")
    max_active_runs_per_owner: int = Field(
        default=256, ge=1, description="Queued plus running runs one owner may have."
    )
    metrics_public: bool = Field(
        default=False,
        description="GET /metrics (Prometheus) answers without a key; otherwise it needs an "
        "admin key (a scrape config's bearer token). Open it only on a private network.",
    )
    task_events: bool = Field(
        default=False,
        description="Workers send Celery's task events, which Flower shows (compose turns "
        "them on).",
    )
    flower_host: str = "127.0.0.1"
    flower_port: int = 5555
    flower_user: str = "admin"
    flower_password: SecretStr | None = Field(
        default=None,
        description="Flower's basic-auth password (python -m worker.flower refuses to start "
        "without one).",
    )
    worker_metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Each worker serves its Prometheus metrics on this port (no key: keep it "
        "on the private network); 0: not served.",
    )
    rate_limit_per_minute: int = Field(
        default=600, ge=0, description="Requests per API key per minute; 0: unlimited."
    )
    fuse_max_arms: int = Field(
        default=8,
        ge=1,
        description="The most runs a worker trains together in one compiled step (runs of a "
        "job that differ only in their optimizer); 1: every run trains alone.",
    )
    steps_per_execution: int = Field(
        default=16,
        ge=1,
        le=1024,
        description="Training steps a worker runs in one call of the compiled step "
        "(TensorFlow's backend): fewer calls from Python, the same numbers; a cancel is heard "
        "up to this many steps later.",
    )
    keras_backend: str = "tensorflow"
    require_gpu: bool = Field(
        default=False,
        description="A worker refuses to start when its backend sees no GPU (set on the GPU "
        "workers of compose, so a missing driver or toolkit is said at once rather than "
        "training on the CPU unnoticed).",
    )
    deterministic_ops: bool = True
    worker_concurrency: int = 1
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = Field(
        default="json",
        description="json: one object a line with job_id, run_id, attempt and worker (for a "
        "log pipeline); text: readable lines (scripts/dev sets it).",
    )

    @model_validator(mode="after")
    def _passwords_into_urls(self) -> "Settings":
        if self.database_password is not None:
            self.database_url = with_password(
                self.database_url, self.database_password.get_secret_value()
            )
        if self.redis_password is not None:
            self.redis_url = with_password(self.redis_url, self.redis_password.get_secret_value())
        return self

    @model_validator(mode="after")
    def _no_default_credentials_in_production(self) -> "Settings":
        if self.environment == "production":
            for name in ("database_url", "redis_url", "broker_url"):
                problem = default_credentials(getattr(self, name))
                if problem:
                    raise ValueError(
                        f"OPTARENA_{name.upper()} {problem}; set a real secret or "
                        "OPTARENA_ENVIRONMENT=development"
                    )
        return self

    @property
    def celery_broker_url(self) -> str:
        return self.broker_url or self.redis_url

    @property
    def visibility_timeout_seconds(self) -> int:
        return self.max_run_seconds + 3600


def with_password(url: str, password: str) -> str:
    """The URL with this password, percent-encoded, in place of any it had."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    user = quote(unquote(parts.username or ""), safe="")
    netloc = f"{user}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


WELL_KNOWN_PASSWORDS = frozenset({"", "postgres", "password", "guest", "optarena", "secret"})


def default_credentials(url: str | None) -> str | None:
    """Why the URL's credentials are a default (None if they are not, or it has no URL)."""
    if url is None:
        return None
    password = urlsplit(url).password
    if password is None:
        return "has no password"
    if password.lower() in WELL_KNOWN_PASSWORDS:
        return f"uses the well-known password {password!r}"
    return None


@lru_cache
def get_settings() -> Settings:
    """Settings read once from the environment."""
    return Settings()
